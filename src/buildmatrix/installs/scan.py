"""Scan platform wheels on an index for the glibc they need, once per sha256.

For every member that may be an ELF file (shared objects and files in
``bin/``/``scripts/`` folders, by name) the version-need table is read with
``verneed.NeedScanner`` through range requests; members it cannot settle are
read whole with the audit's ELF reader (``buildmatrix.audit.elf``). Wheels run
in parallel, their members too. Results are cached by the wheel's sha256 in
one JSON file per wheel; a cache entry is used only when every field
validates, so a damaged or planted entry is rescanned, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from buildmatrix._files import write_text_atomic
from buildmatrix.audit.elf import ElfError, read_elf
from buildmatrix.installs.remotezip import MemberStream, RemoteWheel, WheelReadError
from buildmatrix.installs.verneed import NeedScanner, glibc_of_version_name

__all__ = ["CACHE_SCHEMA", "WheelFile", "WheelScan", "default_cache", "scan_wheels", "tag_glibc"]

CACHE_SCHEMA = 1
WORKERS = 32  # network-bound: many requests in flight
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(.+)")
_LEGACY = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


@dataclass(frozen=True, slots=True)
class WheelFile:
    """A wheel the resolver chose: where it is and what the index says it hashes to."""

    filename: str
    url: str
    sha256: str  # from the index; "" when the index gives none (then never cached)
    size: int | None = None


@dataclass(frozen=True, slots=True)
class WheelScan:
    filename: str
    sha256: str
    elf_glibc: str | None  # the highest GLIBC version any ELF member needs
    set_by: str | None  # the member needing it
    elf_members: int  # ELF members for the arch whose needs were read
    by_hash: int  # of those, settled from the front of the member by vna_hash
    skipped: int  # ELF members for another CPU (GPU code, BPF): skipped as auditwheel does
    bytes_read: int  # network bytes for this wheel (0 when it came from the cache)
    size: int
    errors: tuple[str, ...] = ()
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["errors"] = list(self.errors)
        return record


def tag_glibc(filename: str, arch: str) -> Version | None:
    """The lowest glibc the wheel's manylinux tags for ``arch`` promise, or None (pure/other)."""
    try:
        _name, _version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    found = []
    for tag in tags:
        platform = tag.platform
        for legacy, glibc in _LEGACY.items():
            if platform == f"{legacy}_{arch}":
                found.append(Version(glibc))
        match = _MANYLINUX.fullmatch(platform)
        if match and match.group(3) == arch:
            found.append(Version(f"{match.group(1)}.{match.group(2)}"))
    return min(found) if found else None


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "buildmatrix" / "installs"


def _elf_candidate(name: str) -> bool:
    base = posixpath.basename(name)
    if name.endswith("/") or base.endswith((".py", ".pyi", ".h", ".hpp", ".txt", ".json")):
        return False
    if base.endswith(".so") or ".so." in base:
        return True
    parent = posixpath.basename(posixpath.dirname(name))
    return parent in ("bin", "scripts") and "." not in base


def _member_needs(wheel: RemoteWheel, info: zipfile.ZipInfo, arch: str) -> tuple[str, Version | None, bool]:
    """(state, glibc needed, settled by hash) for one member."""
    scanner = NeedScanner(arch)
    stream = wheel.open_member(info)
    state = "more"
    while state == "more":
        chunk = stream.next_chunk()
        state = scanner.feed(chunk) if chunk else scanner.finish()
    if state == "found":
        assert scanner.needs is not None
        return "elf", scanner.needs.glibc, True
    if state != "fallback":
        return state, None, False

    def reopen() -> MemberStream:
        return wheel.open_member(info)

    elf = read_elf(reopen(), reopen)  # type: ignore[arg-type]
    if elf is None:
        return "not-elf", None, False
    versions = [glibc_of_version_name(version) for _library, version in elf.version_needs]
    found = [v for v in versions if v is not None]
    return "elf", max(found) if found else None, False


def _scan_one(wheel_file: WheelFile, arch: str, pool: ThreadPoolExecutor) -> WheelScan:
    try:
        wheel = RemoteWheel(wheel_file.url)
    except WheelReadError as error:
        return WheelScan(wheel_file.filename, wheel_file.sha256, None, None, 0, 0, 0, 0, 0, (str(error),))
    try:
        futures: dict[str, Future[tuple[str, Version | None, bool]]] = {}
        for info in wheel.members:
            if _elf_candidate(info.filename):
                futures[info.filename] = pool.submit(_member_needs, wheel, info, arch)
        best: tuple[Version, str] | None = None
        elf_members = by_hash = skipped = 0
        errors: list[str] = []
        for name, future in sorted(futures.items()):
            try:
                state, glibc, hashed = future.result()
            except (WheelReadError, ElfError, OSError, ValueError) as error:
                errors.append(f"{name}: {error}")
                continue
            if state == "other-arch":
                skipped += 1
            if state != "elf":
                continue
            elf_members += 1
            by_hash += hashed
            if glibc is not None and (best is None or glibc > best[0]):
                best = (glibc, name)
        return WheelScan(
            filename=wheel_file.filename,
            sha256=wheel_file.sha256,
            elf_glibc=None if best is None else str(best[0]),
            set_by=None if best is None else best[1],
            elf_members=elf_members,
            by_hash=by_hash,
            skipped=skipped,
            bytes_read=wheel.bytes_read,
            size=wheel.size,
            errors=tuple(errors),
        )
    finally:
        wheel.close()


class _Invalid(Exception):
    """A cache entry that is not exactly what this scan would have written."""


def _validated(record: object, wheel_file: WheelFile) -> WheelScan:
    if not isinstance(record, dict) or record.get("schema") != CACHE_SCHEMA:
        raise _Invalid
    if record.get("sha256") != wheel_file.sha256 or record.get("filename") != wheel_file.filename:
        raise _Invalid  # another wheel's entry under this name
    counts = [record.get(key) for key in ("elf_members", "by_hash", "skipped", "size")]
    if not all(type(value) is int and value >= 0 for value in counts):
        raise _Invalid
    glibc, set_by = record.get("elf_glibc"), record.get("set_by")
    if (glibc is None) != (set_by is None) or record.get("errors") != []:
        raise _Invalid  # a scan with errors is never cached: such a record is not ours
    if glibc is not None:
        if not isinstance(glibc, str) or not isinstance(set_by, str):
            raise _Invalid
        try:
            parsed = Version(glibc)
        except InvalidVersion:
            raise _Invalid from None
        if parsed.major != 2 or str(parsed) != glibc:
            raise _Invalid
    elf_members, by_hash, skipped, size = (int(value) for value in counts)  # type: ignore[arg-type]
    return WheelScan(
        filename=wheel_file.filename,
        sha256=wheel_file.sha256,
        elf_glibc=glibc,
        set_by=set_by,
        elf_members=elf_members,
        by_hash=by_hash,
        skipped=skipped,
        bytes_read=0,
        size=size,
        cached=True,
    )


def _read_cache(cache: Path, wheel_file: WheelFile) -> WheelScan | None:
    """The cached scan, only if it validates field by field against what we asked for."""
    if not _SHA256.fullmatch(wheel_file.sha256):
        return None
    try:
        record = json.loads((cache / f"{wheel_file.sha256}.json").read_text(encoding="utf-8"))
        return _validated(record, wheel_file)
    except (OSError, ValueError, _Invalid):
        return None


def _write_cache(cache: Path, scan: WheelScan) -> None:
    if scan.errors or not _SHA256.fullmatch(scan.sha256):
        return
    record = {"schema": CACHE_SCHEMA, **scan.to_json()}
    record.pop("cached")
    record.pop("bytes_read")
    with contextlib.suppress(OSError):  # a read-only cache only costs a rescan next time
        write_text_atomic(cache / f"{scan.sha256}.json", json.dumps(record, indent=1) + "\n")


def scan_wheels(
    wheels: Sequence[WheelFile],
    arch: str,
    *,
    cache: Path | None,
    on_done: Callable[[WheelScan], None] | None = None,
) -> dict[str, WheelScan]:
    """Scan each wheel (by file name) once; cached ones are not fetched at all."""
    results: dict[str, WheelScan] = {}
    todo: list[WheelFile] = []
    for wheel_file in wheels:
        cached = None if cache is None else _read_cache(cache, wheel_file)
        if cached is not None:
            results[wheel_file.filename] = cached
            if on_done is not None:
                on_done(cached)
        else:
            todo.append(wheel_file)
    if not todo:
        return results
    with (
        ThreadPoolExecutor(max_workers=WORKERS) as members,
        ThreadPoolExecutor(max_workers=min(len(todo), 16)) as outer,
    ):
        futures = [outer.submit(_scan_one, wheel_file, arch, members) for wheel_file in todo]
        for future in futures:
            scan = future.result()
            results[scan.filename] = scan
            if cache is not None:
                _write_cache(cache, scan)
            if on_done is not None:
                on_done(scan)
    return results
