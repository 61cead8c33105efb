"""Tiny but valid wheels (METADATA, WHEEL, RECORD with hashes), named like real ones."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

__all__ = ["make_wheel"]


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    files: Mapping[str, bytes] | None = None,
    extras: Sequence[str] = (),
    tag: str = "py3-none-any",
) -> Path:
    """A wheel of distribution ``name`` at ``version`` carrying ``files`` besides its package."""
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
    contents = {
        **(files or {}),
        f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    path = directory / f"{dist}-{version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in contents.items():
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path
