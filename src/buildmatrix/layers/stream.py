"""Image layers as forward-only tar readers: decompress as you go, skip without copying.

``tarfile``'s own stream mode (``r|gz``) copies every byte several times through
its internal buffers and remembers every member it has seen, which makes large
layers slow and lets memory grow with the number of files. Here a layer
(gzip, zstd or plain) becomes a file object that ``tarfile`` may seek *forward*
in: skipping a member's data decompresses it into nothing, and a plain layer on
a seekable file is skipped with real seeks. ``members`` walks the entries and
forgets each one after it is handled, so memory stays flat whatever the size.
"""

from __future__ import annotations

import io
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

from buildmatrix.errors import BuildMatrixError

__all__ = ["GZIP_MAGIC", "ZSTD_MAGIC", "ForwardReader", "members", "open_layer_stream", "open_layer_tar"]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
INPUT_CHUNK = 256 * 1024  # compressed bytes read at a time
OUTPUT_CHUNK = 1024 * 1024  # most decompressed bytes held at a time


class _GzipDecoder:
    """Decompresses a (possibly multi-member) gzip stream, at most ``limit`` bytes per call."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._inflate = zlib.decompressobj(wbits=31)
        self._input = b""
        self._finished = False

    def __call__(self, limit: int) -> bytes:
        while not self._finished:
            data = self._input or self._read(INPUT_CHUNK)
            if not data:
                if not self._inflate.eof:
                    msg = "the gzip layer is truncated"
                    raise EOFError(msg)
                self._finished = True
                break
            output = self._inflate.decompress(data, limit)
            self._input = self._inflate.unconsumed_tail
            if self._inflate.eof:
                rest = self._inflate.unused_data + self._input
                if rest[:2] == GZIP_MAGIC:  # another member follows (pigz, concatenation)
                    self._inflate = zlib.decompressobj(wbits=31)
                    self._input = rest
                else:  # trailing padding after the last member
                    self._finished = True
            if output:
                return output
        return b""


class ForwardReader(io.RawIOBase):
    """A decompressed byte stream that can seek forward (by decoding) but never back."""

    def __init__(self, decode: Callable[[int], bytes]) -> None:
        super().__init__()
        self._decode = decode
        self._chunk = b""
        self._offset = 0
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def _available(self) -> int:
        if self._offset >= len(self._chunk):
            self._chunk = self._decode(OUTPUT_CHUNK)
            self._offset = 0
        return len(self._chunk) - self._offset

    def read(self, size: int | None = -1) -> bytes:
        remaining = sys.maxsize if size is None or size < 0 else size
        parts = []
        while remaining > 0:
            available = self._available()
            if available == 0:
                break
            take = min(available, remaining)
            parts.append(self._chunk[self._offset : self._offset + take])
            self._offset += take
            self._position += take
            remaining -= take
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            position += self._position
        elif whence != io.SEEK_SET:
            msg = "a layer stream cannot seek from its end"
            raise io.UnsupportedOperation(msg)
        if position < self._position:
            msg = f"a layer stream cannot seek back (from {self._position} to {position})"
            raise io.UnsupportedOperation(msg)
        skip = position - self._position
        while skip > 0:
            available = self._available()
            if available == 0:
                break  # past the end: the next read comes back short, as tarfile expects
            take = min(available, skip)
            self._offset += take
            self._position += take
            skip -= take
        return self._position


def _zstd_decoder(source: IO[bytes]) -> Callable[[int], bytes]:
    try:
        import zstandard
    except ImportError as error:  # pragma: no cover - zstandard is a dependency
        msg = "a zstd-compressed layer needs the `zstandard` package (pip install zstandard)"
        raise BuildMatrixError(msg) from error
    reader = zstandard.ZstdDecompressor().stream_reader(
        source, read_size=INPUT_CHUNK, read_across_frames=True
    )
    return reader.read


class _Prefixed(io.RawIOBase):
    """``source`` with the bytes already read from it (the magic) put back in front."""

    def __init__(self, prefix: bytes, source: IO[bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0:
                head, self._prefix = self._prefix, b""
                return head + self._source.read()
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            return head
        return self._source.read(-1 if size is None else size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_layer_stream(source: IO[bytes]) -> IO[bytes]:
    """One layer blob's tar bytes, whatever its compression (detected by magic).

    ``source`` may be forward-only (a blob being hashed, an HTTP response); the
    result seeks forward only, except a plain tar on a seekable file, which is
    returned as it is (skipped through with real seeks).
    """
    magic = source.read(4)
    if magic[:2] != GZIP_MAGIC and magic != ZSTD_MAGIC and source.seekable():
        source.seek(0)
        return source
    rest: IO[bytes] = _Prefixed(magic, source)  # type: ignore[assignment]
    if magic[:2] == GZIP_MAGIC:
        return ForwardReader(_GzipDecoder(rest.read))  # type: ignore[return-value]
    if magic == ZSTD_MAGIC:
        return ForwardReader(_zstd_decoder(rest))  # type: ignore[return-value]
    return ForwardReader(rest.read)  # type: ignore[return-value]


def open_layer_tar(source: IO[bytes]) -> tarfile.TarFile:
    """A ``tarfile`` reader over one layer blob, whatever its compression."""
    return tarfile.open(fileobj=open_layer_stream(source), mode="r:")


def members(archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Each member once, in order, without ``TarFile`` keeping a list of them all."""
    while True:
        member = archive.next()
        if member is None:
            return
        yield member
        # TarFile.next() appends every member to its (undeclared) ``members`` list;
        # nothing here reads it, and clearing it keeps memory flat on huge layers.
        cast(Any, archive).members.clear()
