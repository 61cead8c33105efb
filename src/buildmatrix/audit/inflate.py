"""Read a zip member front to back with the fastest inflate installed.

``zipfile`` inflates with the stdlib's zlib and serialises reads of one
archive behind a lock. The audit reads every ELF member of a wheel to its end
(the section headers sit there, and the CRC is only known then), so inflating
is most of its time. This reader takes a member's deflated bytes with
``os.pread`` (threads share one descriptor, no lock, no seek) and inflates
them with ISA-L (``isal``) when installed, else zlib-ng (``zlib-ng``), else the
stdlib; all three release the GIL while they work, so members inflate on every
core at once. Output is capped at the member's declared size (a zip bomb stops
there) and checked against its size and CRC at the end, as ``zipfile`` does.
"""

from __future__ import annotations

import importlib
import os
import struct
import zipfile
import zlib
from types import ModuleType, TracebackType
from typing import Any

__all__ = ["INFLATE_BACKEND", "MemberReader", "fast_zlib"]

INPUT_BLOCK = 1 << 20  # deflated bytes read per pread
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_SIGNATURE = b"PK\x03\x04"


def fast_zlib() -> tuple[str, ModuleType]:
    """(name, module) of the fastest zlib-compatible inflate available."""
    for name, module_name in (("isal", "isal.isal_zlib"), ("zlib-ng", "zlib_ng.zlib_ng")):
        try:
            return name, importlib.import_module(module_name)
        except ImportError:
            continue
    return "zlib", zlib


INFLATE_BACKEND, _ZLIB = fast_zlib()


class _FusedCrcInflater:
    """ISA-L's raw inflate that also computes the CRC-32 as it writes (one pass, not two)."""

    def __init__(self) -> None:
        from isal import igzip_lib

        # GZIP_NO_HDR: a raw deflate stream (no header, no trailer read), CRC-32 kept.
        self._inflater = igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP_NO_HDR)

    @property
    def eof(self) -> bool:
        return bool(self._inflater.eof)

    @property
    def needs_input(self) -> bool:
        return bool(self._inflater.needs_input)

    @property
    def crc(self) -> int:
        return int(self._inflater.crc)

    def decompress(self, data: bytes, limit: int) -> bytes:
        out: bytes = self._inflater.decompress(data, limit)
        return out


class MemberReader:
    """A forward-only binary stream of one member's uncompressed bytes.

    Raises ``zipfile.BadZipFile`` on a damaged local header, truncated data,
    more or fewer bytes than declared, or a CRC mismatch. Only stored and
    deflated members are read here (``supported`` says which).
    """

    def __init__(self, fd: int, info: zipfile.ZipInfo, zlib_module: Any = None) -> None:
        self._fd = fd
        self._info = info
        self._zlib = zlib_module or _ZLIB
        header = os.pread(fd, LOCAL_HEADER.size, info.header_offset)
        if len(header) != LOCAL_HEADER.size or header[:4] != LOCAL_SIGNATURE:
            msg = f"bad local file header for {info.filename!r}"
            raise zipfile.BadZipFile(msg)
        fields = LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[9], fields[10]
        self._position = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
        self._compressed_left = info.compress_size
        self._left = info.file_size  # uncompressed bytes still to come
        self._crc = 0
        self._buffer = b""  # inflated, not yet returned
        self._pieces: list[bytes] = []  # inflated by the current read, joined once
        self._tail = b""
        self._done = False
        deflated = info.compress_type == zipfile.ZIP_DEFLATED
        self._fused = (
            _FusedCrcInflater() if deflated and zlib_module is None and INFLATE_BACKEND == "isal" else None
        )
        self._inflater = self._zlib.decompressobj(-15) if deflated and self._fused is None else None

    @staticmethod
    def supported(info: zipfile.ZipInfo) -> bool:
        encrypted = bool(info.flag_bits & 0x1)
        return not encrypted and info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

    def __enter__(self) -> MemberReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._buffer = self._tail = b""
        self._done = True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self._info.file_size + 1
        have = len(self._buffer)
        self._pieces = [self._buffer] if self._buffer else []
        while have < size and not self._done:
            have += self._fill(size - have)
        data = b"".join(self._pieces) if len(self._pieces) != 1 else self._pieces[0]
        self._pieces = []
        if len(data) <= size:
            self._buffer = b""
            return data
        self._buffer = data[size:]
        return data[:size]

    def _raw(self, size: int) -> bytes:
        size = min(size, self._compressed_left)
        if size <= 0:
            return b""
        data = os.pread(self._fd, size, self._position)
        if len(data) != size:
            msg = f"{self._info.filename!r}: the zip file ends inside the member"
            raise zipfile.BadZipFile(msg)
        self._position += size
        self._compressed_left -= size
        return data

    def _fill(self, want: int) -> int:
        """Inflate up to ``want`` more bytes into the current read; how many came."""
        # One byte beyond the declared size is enough to catch a member that lies.
        limit = min(want, self._left + 1)
        if self._fused is not None:
            data = self._raw(INPUT_BLOCK) if self._fused.needs_input else b""
            out = self._fused.decompress(data, limit)
            exhausted = self._fused.eof
            if not exhausted and not out and self._fused.needs_input and self._compressed_left == 0:
                msg = f"{self._info.filename!r}: the deflate stream is truncated"
                raise zipfile.BadZipFile(msg)
        elif self._inflater is None:
            out = self._raw(limit)
            exhausted = self._compressed_left == 0
        else:
            if not self._tail:
                self._tail = self._raw(INPUT_BLOCK)
            # With no new input this drains what the inflater holds (ISA-L keeps
            # input inside instead of handing back an unconsumed tail).
            out = self._inflater.decompress(self._tail, limit)
            self._tail = self._inflater.unconsumed_tail
            exhausted = self._inflater.eof
            if not exhausted and not out and not self._tail and self._compressed_left == 0:
                msg = f"{self._info.filename!r}: the deflate stream is truncated"
                raise zipfile.BadZipFile(msg)
        if len(out) > self._left:
            msg = f"{self._info.filename!r}: more data than its declared {self._info.file_size} bytes"
            raise zipfile.BadZipFile(msg)
        self._left -= len(out)
        if self._fused is None:
            self._crc = self._zlib.crc32(out, self._crc)
        if out:
            self._pieces.append(out)
        if exhausted:
            self._done = True
            if self._left:
                msg = f"{self._info.filename!r}: {self._left} bytes short of its declared size"
                raise zipfile.BadZipFile(msg)
            if (self._fused.crc if self._fused is not None else self._crc) != self._info.CRC:
                msg = f"Bad CRC-32 for file {self._info.filename!r}"
                raise zipfile.BadZipFile(msg)
        return len(out)
