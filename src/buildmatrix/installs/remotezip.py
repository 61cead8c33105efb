"""A wheel on an index, read as a zip through single HTTP range requests.

The central directory comes from the file's tail (one request, usually); each
member is fetched from its local header onward in growing windows and
inflated as the consumer asks for more, so a member is read only as far as
its reader needs. A server that ignores ranges (answers 200) gets the file
downloaded once into a temporary file instead, and every member is read from
there; ``bytes_read`` counts what crossed the network either way. Member
names are data: nothing is ever written under them.
"""

from __future__ import annotations

import io
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from buildmatrix.installs.http import HttpError, RangeNotSupported, download, fetch_range
from buildmatrix.redact import redact_url

__all__ = ["MemberStream", "RemoteWheel", "WheelReadError"]

TAIL = 256 << 10  # the first request: the central directory, or all of a small wheel
FIRST_WINDOW = 64 << 10  # compressed bytes fetched first for a member
MAX_WINDOW = 8 << 20
INFLATE_STEP = 16 << 20  # most inflated bytes produced per step
MAX_WHEEL = 16 << 30  # a "wheel" bigger than this is refused, not downloaded
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")


class WheelReadError(Exception):
    """The wheel cannot be read: not a zip, a member that lies, a failed request."""


class _Sparse(io.RawIOBase):
    """The remote file as a seekable file for ``zipfile``: ranges fetched on demand."""

    def __init__(self, wheel: RemoteWheel, size: int, tail: bytes) -> None:
        self.wheel = wheel
        self.size = size
        self.position = 0
        self.pieces: list[tuple[int, bytes]] = [(size - len(tail), tail)]

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = base + offset
        return self.position

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        if end <= self.position:
            return b""
        for start, data in self.pieces:
            if start <= self.position and end <= start + len(data):
                out = data[self.position - start : end - start]
                self.position = end
                return out
        data = self.wheel.read_range(self.position, end)
        self.pieces.append((self.position, data))
        self.position = end
        return data


class RemoteWheel:
    """One wheel file on an index; ``members`` lists it, ``open_member`` streams one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bytes_read = 0
        self.requests = 0
        self.ranges = True  # False once the server ignored a range request
        self.size = 0
        self._lock = threading.Lock()
        self._local: IO[bytes] | None = None
        self.members: list[zipfile.ZipInfo] = []
        self._open()

    def _count(self, size: int) -> None:
        with self._lock:
            self.bytes_read += size
            self.requests += 1

    def _open(self) -> None:
        try:
            tail, self.size = fetch_range(self.url, -TAIL, None)
            self._count(len(tail))
            if len(tail) == self.size:  # a small wheel came whole: read every member from memory
                self._local = io.BytesIO(tail)
            source: IO[bytes] = _Sparse(self, self.size, tail)  # type: ignore[assignment]
        except RangeNotSupported:
            self.ranges = False
            self._local = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
            try:
                self.size = download(self.url, self._local, limit=MAX_WHEEL)
            except HttpError as error:
                raise WheelReadError(str(error)) from None
            self._count(self.size)
            source = self._local
        except HttpError as error:
            raise WheelReadError(str(error)) from None
        try:
            with zipfile.ZipFile(source) as archive:
                self.members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            msg = f"{redact_url(self.url)}: not a readable zip file: {error}"
            raise WheelReadError(msg) from None

    def close(self) -> None:
        if self._local is not None:
            self._local.close()

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (exclusive) of the file."""
        if end > self.size or start < 0:
            msg = f"{redact_url(self.url)}: a read at {start}..{end} past the end ({self.size} bytes)"
            raise WheelReadError(msg)
        if self._local is not None:
            with self._lock:
                self._local.seek(start)
                return self._local.read(end - start)
        try:
            data, _total = fetch_range(self.url, start, end - 1)
        except HttpError as error:
            raise WheelReadError(str(error)) from None
        self._count(len(data))
        return data

    def open_member(self, info: zipfile.ZipInfo) -> MemberStream:
        return MemberStream(self, info)


class MemberStream(io.RawIOBase):
    """One member inflated on demand: ``read(n)`` fetches only what ``n`` bytes need."""

    def __init__(self, wheel: RemoteWheel, info: zipfile.ZipInfo) -> None:
        self.wheel = wheel
        self.info = info
        self.chunks = self._chunks()
        self.buffer = b""
        self.produced = 0

    def readable(self) -> bool:
        return True

    def _compressed(self) -> Iterator[bytes]:
        info, wheel = self.info, self.wheel
        start = info.header_offset
        window = FIRST_WINDOW
        head_end = min(
            wheel.size, start + _LOCAL_HEADER.size + len(info.orig_filename.encode()) + 1024 + window
        )
        head = wheel.read_range(start, head_end)
        if len(head) < _LOCAL_HEADER.size:
            msg = f"{info.filename}: truncated local header"
            raise WheelReadError(msg)
        fields = _LOCAL_HEADER.unpack_from(head)
        if fields[0] != b"PK\x03\x04":
            msg = f"{info.filename}: bad local header signature"
            raise WheelReadError(msg)
        name_length, extra_length = fields[9], fields[10]
        data_start = start + _LOCAL_HEADER.size + name_length + extra_length
        data_end = data_start + info.compress_size
        if data_end > wheel.size:
            msg = f"{info.filename}: its data runs past the end of the wheel"
            raise WheelReadError(msg)
        have = head[data_start - start : data_end - start]
        if have:
            yield have
        position = data_start + len(have)
        while position < data_end:
            window = min(window * 2, MAX_WINDOW)
            end = min(data_end, position + window)
            yield wheel.read_range(position, end)
            position = end

    def _chunks(self) -> Iterator[bytes]:
        info = self.info
        if info.flag_bits & 0x1:
            msg = f"{info.filename}: encrypted member"
            raise WheelReadError(msg)
        if info.compress_type == zipfile.ZIP_STORED:
            inflate = None
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            inflate = zlib.decompressobj(-15)
        else:
            msg = f"{info.filename}: compression method {info.compress_type} is not read remotely"
            raise WheelReadError(msg)
        for piece in self._compressed():
            pending = piece
            while pending:
                if inflate is None:
                    out, pending = pending, b""
                else:
                    # Bounded steps: a few compressed bytes may inflate to gigabytes.
                    out = inflate.decompress(pending, min(INFLATE_STEP, info.file_size + 1 - self.produced))
                    pending = inflate.unconsumed_tail
                self.produced += len(out)
                if self.produced > info.file_size:
                    msg = f"{info.filename}: inflates past its declared size {info.file_size} (a zip bomb?)"
                    raise WheelReadError(msg)
                if out:
                    yield out
                elif pending:
                    break

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.buffer + b"".join(self.chunks)
        while len(self.buffer) < size:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.buffer += chunk
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def next_chunk(self) -> bytes:
        """The next inflated piece, or b"" at the end."""
        if self.buffer:
            out, self.buffer = self.buffer, b""
            return out
        return next(self.chunks, b"")
