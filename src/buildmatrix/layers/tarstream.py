"""A forward-only tar reader for layer scans: headers only, data read on request.

``tarfile`` builds a ``TarInfo`` per member through a dozen small helpers; on a
layer of 200,000 small files that parsing is most of a verify's time. A scan
needs only each entry's name, type, size and link target, and the data of the
few files it reads, so this reader parses each 512-byte header with a handful
of slices and skips data with a forward seek (which decompresses into nothing
on a compressed layer). It reads what ``tarfile`` reads for layers: ustar and
GNU headers, PAX extended headers (``path``, ``linkpath``, ``size``; global ones
too), GNU long names and links (``L``, ``K``), base-256 sizes; the header
checksum is verified and a bad one is an error (``tarfile`` ends the archive
quietly at a bad header after the first, which would hide what follows).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

__all__ = ["TarEntry", "TarStream"]

BLOCK = 512
_NUL_BLOCK = bytes(BLOCK)
_REGULAR = frozenset({b"0", b"\0", b"7", b"S"})  # file, old file, contiguous, GNU sparse
_META_LIMIT = 1024 * 1024  # a PAX header or GNU long name larger than this is refused
_CHKSUM_BLANK = 8 * 0x20  # the checksum field counts as eight spaces


@dataclass(slots=True)
class TarEntry:
    name: str
    type: bytes
    size: int
    linkname: str

    def isfile(self) -> bool:
        return self.type in _REGULAR

    def isdir(self) -> bool:
        return self.type == b"5"

    def islnk(self) -> bool:
        return self.type == b"1"

    def issym(self) -> bool:
        return self.type == b"2"


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 (sizes of 8 GiB and more)
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[:1] == b"\xff" else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        msg = f"invalid number {field!r} in a tar header"
        raise tarfile.ReadError(msg) from None


def _check(header: bytes) -> None:
    stored = _number(header[148:156])
    unsigned = sum(header) - sum(header[148:156]) + _CHKSUM_BLANK
    if stored == unsigned:
        return
    signed = (
        unsigned
        - 256 * sum(1 for byte in header if byte > 127)
        + 256 * sum(1 for byte in header[148:156] if byte > 127)
    )
    if stored != signed:
        msg = "bad checksum in a tar header"
        raise tarfile.ReadError(msg)


def _pax_records(data: bytes) -> dict[str, str]:
    """``LENGTH key=value\\n`` records (POSIX.1-2001)."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position : position + 1] != b"\0":
        space = data.find(b" ", position)
        if space < 0:
            break
        try:
            length = int(data[position:space])
        except ValueError:
            msg = "invalid PAX header record"
            raise tarfile.ReadError(msg) from None
        record = data[space + 1 : position + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            msg = "invalid PAX header record"
            raise tarfile.ReadError(msg)
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class TarStream:
    """Entries of a tar stream, in order; ``read`` returns the current entry's data."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._position = 0  # offset of the next unread byte in the stream
        self._data_end = 0  # where the current entry's data ends
        self._next_header = 0  # where the next header starts
        self._global: dict[str, str] = {}

    def _read_exact(self, size: int) -> bytes:
        data = self._stream.read(size)
        self._position += len(data)
        if len(data) != size:
            msg = "unexpected end of data in a tar layer"
            raise tarfile.ReadError(msg)
        return data

    def _skip_to(self, offset: int) -> None:
        """Forward to ``offset`` (a forward seek decompresses into nothing)."""
        if offset > self._position:
            reached = self._stream.seek(offset)
            if reached != offset:
                msg = "unexpected end of data in a tar layer"
                raise tarfile.ReadError(msg)
            self._position = reached

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current entry's data (from where the last read ended)."""
        size = max(0, min(size, self._data_end - self._position))
        return self._read_exact(size) if size else b""

    def _meta(self, size: int) -> bytes:
        if size > _META_LIMIT:
            msg = f"a tar metadata header of {size} bytes (over {_META_LIMIT})"
            raise tarfile.ReadError(msg)
        data = self._read_exact(size)
        self._skip_to(self._position + (-size % BLOCK))
        return data

    def __iter__(self) -> Iterator[TarEntry]:
        # What PAX (``x``) and GNU long name/link (``L``, ``K``) headers said of the next entry
        pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            self._skip_to(self._next_header)
            header = self._stream.read(BLOCK)
            self._position += len(header)
            if not header or header == _NUL_BLOCK:
                return  # the end-of-archive blocks (or a stream without them)
            if len(header) != BLOCK:
                msg = "unexpected end of data in a tar layer"
                raise tarfile.ReadError(msg)
            _check(header)
            kind = header[156:157]
            size = _number(header[124:136])
            if size < 0:
                msg = "negative size in a tar header"
                raise tarfile.ReadError(msg)
            if kind in (b"x", b"g", b"L", b"K"):
                long_name, long_link = self._read_meta(kind, size, pax, long_name, long_link)
                continue
            name = _text(header[0:100])
            if header[257:263] == b"ustar\0":  # POSIX ustar: a prefix holds long paths
                prefix = _text(header[345:500])
                if prefix:
                    name = f"{prefix}/{name}"
            linkname = _text(header[157:257])
            if pax or long_name is not None or long_link is not None or self._global:
                name, linkname, size = self._override(
                    pax, long_name, long_link, name=name, linkname=linkname, size=size
                )
                pax, long_name, long_link = {}, None, None
            if kind == b"\0" and name.endswith("/"):
                kind = b"5"  # an old-style directory
            if kind == b"5":
                name = name.rstrip("/")  # as tarfile names directories
            data_size = size if kind in _REGULAR or kind not in b"123456" else 0
            self._data_end = self._position + data_size
            self._next_header = self._data_end + (-data_size % BLOCK)
            yield TarEntry(name, kind, size, linkname)

    def _read_meta(
        self, kind: bytes, size: int, pax: dict[str, str], long_name: str | None, long_link: str | None
    ) -> tuple[str | None, str | None]:
        """Read a PAX (``x``, global ``g``) or GNU long name/link (``L``, ``K``) header's data.

        PAX records go into ``pax`` (or the global records); returns the long name and link.
        """
        data = self._meta(size)
        if kind == b"x":
            pax.update(_pax_records(data))
        elif kind == b"g":
            self._global.update(_pax_records(data))
        elif kind == b"L":
            long_name = _text(data)
        else:
            long_link = _text(data)
        self._next_header = self._position
        return long_name, long_link

    def _override(
        self,
        pax: dict[str, str],
        long_name: str | None,
        long_link: str | None,
        *,
        name: str,
        linkname: str,
        size: int,
    ) -> tuple[str, str, int]:
        """The entry's name, link target and size after the PAX records and GNU long names before it."""
        merged = {**self._global, **pax} if self._global else pax
        name = merged.get("path", long_name if long_name is not None else name)
        linkname = merged.get("linkpath", long_link if long_link is not None else linkname)
        if "size" in merged:
            try:
                size = int(merged["size"])
            except ValueError:
                msg = "invalid size in a PAX header"
                raise tarfile.ReadError(msg) from None
        return name, linkname, size
