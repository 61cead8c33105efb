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
        self._inflater = self._zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None

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
        if self._inflater is None:
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
        self._crc = self._zlib.crc32(out, self._crc)
        if out:
            self._pieces.append(out)
        if exhausted:
            self._done = True
            if self._left:
                msg = f"{self._info.filename!r}: {self._left} bytes short of its declared size"
                raise zipfile.BadZipFile(msg)
            if self._crc != self._info.CRC:
                msg = f"Bad CRC-32 for file {self._info.filename!r}"
                raise zipfile.BadZipFile(msg)
        return len(out)
