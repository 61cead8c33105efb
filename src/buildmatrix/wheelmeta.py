"""A wheel's METADATA, read straight from its zip: what the wheels gate and verify check."""

from __future__ import annotations

import email.parser
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import BuildMatrixError

__all__ = ["MAX_MEMBER_BYTES", "WheelMetadata", "read_member", "read_wheel_metadata"]

# METADATA of real wheels is a few kB (torch's is 40 kB); 16 MiB is generous and
# keeps a decompression bomb from taking the machine's memory.
MAX_MEMBER_BYTES = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelMetadata:
    name: NormalizedName
    version: Version
    requires: tuple[Requirement, ...]
    extras: tuple[NormalizedName, ...]


def read_wheel_metadata(path: Path) -> WheelMetadata:
    """Name, version, Requires-Dist and Provides-Extra of a wheel's METADATA."""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1
            ]
            if len(candidates) != 1:
                msg = f"{path}: expected one *.dist-info/METADATA, found {len(candidates)}"
                raise BuildMatrixError(msg)
            text = read_member(archive, candidates[0], path).decode("utf-8")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, EOFError) as error:
        msg = f"cannot read wheel {path}: {error}"
        raise BuildMatrixError(msg) from error
    headers = email.parser.HeaderParser().parsestr(text, headersonly=True)
    try:
        requires = tuple(Requirement(r) for r in headers.get_all("Requires-Dist") or [])
        version = Version(headers["Version"] or "")
    except (InvalidRequirement, InvalidVersion) as error:
        msg = f"wheel {path}: invalid METADATA: {error}"
        raise BuildMatrixError(msg) from error
    return WheelMetadata(
        name=canonicalize_name(headers["Name"] or ""),
        version=version,
        requires=requires,
        extras=tuple(canonicalize_name(e) for e in headers.get_all("Provides-Extra") or []),
    )


def read_member(archive: zipfile.ZipFile, member: str, path: Path, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """A member's bytes, read in chunks and refused past ``limit`` (whatever the
    zip's directory claims): memory stays bounded however far the member inflates."""
    chunks: list[bytes] = []
    size = 0
    with archive.open(member) as handle:
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                msg = (
                    f"wheel {path}: {member} inflates to more than {limit} bytes (the cap for a "
                    "member read into memory); refusing to read it"
                )
                raise BuildMatrixError(msg)
            chunks.append(chunk)
    return b"".join(chunks)
