"""Blobs checked against their digest while they stream.

A blob (layer, config, manifest) is named by the digest of its bytes; a reader
that trusts the name without hashing the bytes can be handed a backdoored
layer stored under a good layer's digest. ``DigestReader`` hashes every byte
as it is read and, at the end (``verify``, which drains what the consumer did
not need), compares with the expected digest and size; a mismatch raises
``BlobDigestError`` naming the blob. Reading more bytes than the descriptor's
size is refused at once, so a hostile source cannot stream forever.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import IO, Any

from buildmatrix.layers.scan import ImageError

__all__ = ["BlobDigestError", "DigestReader", "check_digest", "parse_digest"]

# OCI image spec: algorithm ":" encoded; the registered algorithms and their hex lengths.
_ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"(?P<algorithm>[a-z0-9]+(?:[+._-][a-z0-9]+)*):(?P<encoded>[a-zA-Z0-9=_-]+)")
_DRAIN_CHUNK = 1024 * 1024


class BlobDigestError(ImageError):
    """A blob's bytes do not match the digest (or size) it is referenced by."""

    def __init__(self, message: str, *, blob: str, found: str) -> None:
        super().__init__(message)
        self.blob = blob
        self.found = found


def parse_digest(digest: object) -> tuple[str, str]:
    """``(algorithm, hex)`` of a digest we can check; ValueError for anything else."""
    match = _DIGEST.fullmatch(str(digest))
    if match is None:
        msg = f"invalid digest {digest!r}"
        raise ValueError(msg)
    algorithm, encoded = match["algorithm"], match["encoded"]
    length = _ALGORITHMS.get(algorithm)
    if length is None:
        msg = f"digest {digest!r}: unsupported algorithm {algorithm!r} (sha256 or sha512)"
        raise ValueError(msg)
    if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
        msg = f"invalid digest {digest!r}: {algorithm} takes {length} lowercase hex digits"
        raise ValueError(msg)
    return algorithm, encoded


def check_digest(data: bytes, digest: str, what: str, size: int | None = None) -> bytes:
    """``data`` when it is the blob ``digest`` names (and ``size`` long), else BlobDigestError."""
    algorithm, encoded = parse_digest(digest)
    found = hashlib.new(algorithm, data).hexdigest()
    if found != encoded:
        msg = f"{what} {digest} does not match its digest: its bytes hash to {algorithm}:{found}"
        raise BlobDigestError(msg, blob=digest, found=f"{algorithm}:{found}")
    if size is not None and len(data) != size:
        msg = f"{what} {digest} is {len(data)} bytes, its descriptor says {size}"
        raise BlobDigestError(msg, blob=digest, found=f"{len(data)} bytes")
    return data


class DigestReader(io.RawIOBase):
    """A forward-only reader over ``source`` that hashes what passes through it."""

    def __init__(self, source: IO[bytes], digest: str, what: str, size: int | None = None) -> None:
        super().__init__()
        algorithm, self._expected = parse_digest(digest)
        self._source = source
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm
        self.digest = digest
        self.what = what  # "layer", "config", ...: how messages name the blob
        self.size = size
        self.bytes_read = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = _DRAIN_CHUNK if self.size is None else max(self.size - self.bytes_read + 1, 1)
        data = self._source.read(size)
        if data:
            self._hash.update(data)
            self.bytes_read += len(data)
            if self.size is not None and self.bytes_read > self.size:
                msg = f"{self.what} {self.digest} is longer than the {self.size} bytes its descriptor says"
                raise BlobDigestError(msg, blob=self.digest, found=f"over {self.size} bytes")
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def verify(self) -> None:
        """Read what is left, then compare: the whole blob is hashed, whatever the consumer read."""
        if self._verified:
            return
        while self.read(_DRAIN_CHUNK):
            pass
        found = self._hash.hexdigest()
        if found != self._expected:
            msg = (
                f"{self.what} {self.digest} does not match its digest: its bytes hash to "
                f"{self._algorithm}:{found}"
            )
            raise BlobDigestError(msg, blob=self.digest, found=f"{self._algorithm}:{found}")
        if self.size is not None and self.bytes_read != self.size:
            msg = f"{self.what} {self.digest} is {self.bytes_read} bytes, its descriptor says {self.size}"
            raise BlobDigestError(msg, blob=self.digest, found=f"{self.bytes_read} bytes")
        self._verified = True

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()
