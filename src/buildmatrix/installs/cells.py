"""The cells of the installability check and their verdicts.

A cell is one release x extra x Python x arch the matrix allows (its rules
apply) at one target glibc: the claimed floor of the meta package and every
OS row's glibc for that arch. Each cell is resolved for its platform
(``resolve``), the chosen platform wheels are scanned once across all cells
(``scan``), and the verdict is: resolved, no package without a wheel, no wheel
that could not be read, and the effective floor (the highest of the ELF needs
and of the chosen wheels' tags) at or below the target.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from buildmatrix.errors import UsageError, check_choice
from buildmatrix.installs.http import HttpError
from buildmatrix.installs.resolve import UV_GLIBC_LEVELS, Resolution, resolve, uv_binary
from buildmatrix.installs.scan import WheelScan, scan_wheels, tag_glibc
from buildmatrix.model import Matrix, Release, WheelPackage

__all__ = ["Cell", "CellKey", "Verdict", "claimed_floor", "plan_cells", "run_cells"]

RESOLVE_WORKERS = 4  # uv processes at once


@dataclass(frozen=True, slots=True, order=True)
class CellKey:
    release: str
    extra: str
    python: str
    arch: str
    target_glibc: Version


@dataclass(frozen=True, slots=True)
class Cell:
    key: CellKey
    requirement: str  # "ai-dynamo[vllm]==0.7.1"
    indexes: tuple[str, ...]


@dataclass
class Verdict:
    cell: Cell
    resolved: bool
    floor: Version | None = None
    set_by: dict[str, str] | None = None
    source_only: list[str] = field(default_factory=list)
    unknown_dependencies: list[str] = field(default_factory=list)  # source-only, no static metadata
    underclaims: list[dict[str, str]] = field(default_factory=list)
    wheels: int = 0  # platform wheels in the set (each audited)
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)  # resolution failure, unreadable wheels

    @property
    def ok(self) -> bool:
        return (
            self.resolved
            and not self.source_only
            and not self.problems
            and self.floor is not None
            and self.floor <= self.cell.key.target_glibc
        )

    def to_json(self) -> dict[str, Any]:
        key = self.cell.key
        return {
            "release": key.release,
            "extra": key.extra,
            "python": key.python,
            "arch": key.arch,
            "target_glibc": str(key.target_glibc),
            "resolved": self.resolved,
            "floor": None if self.floor is None else str(self.floor),
            "set_by": self.set_by,
            "source_only": list(self.source_only),
            "underclaims": list(self.underclaims),
            "wheels": self.wheels,
            "bytes_read": self.bytes_read,
            "ok": self.ok,
        }


def meta_package(matrix: Matrix) -> str:
    metas = [w.name for w in matrix.wheels if w.meta]
    if not metas:
        msg = f"{matrix.path}: no [wheel.*] has meta = true: nothing users install by extra"
        raise UsageError(msg)
    return str(metas[0])


def claimed_floor(matrix: Matrix) -> Version:
    """The glibc the matrix documents for the meta package (its runtime row, else its policy)."""
    name = meta_package(matrix)
    for package in matrix.runtime_packages:
        if package.name == name:
            return package.glibc
    policy = matrix.wheel(name).policy  # "manylinux_2_28"
    _, major, minor = policy.split("_")
    return Version(f"{major}.{minor}")


def os_glibcs(
    matrix: Matrix, arch: str, claimed_for: dict[str, str] | None = None
) -> list[tuple[str, Version]]:
    """(row label, glibc) for every OS and cloud row of ``arch`` that states its glibc.

    With ``claimed_for`` (release, framework, python attributes), only the rows
    the matrix's rules claim for them (Python 3.12 only on Ubuntu 24.04).
    """
    rows: list[tuple[str, Version | None, str | None]] = [
        (f"{o.name} {o.version}", o.glibc, o.id) for o in matrix.operating_systems if o.arch == arch
    ]
    rows += [(f"{c.os} {c.version}", c.glibc, None) for c in matrix.clouds if c.arch == arch]
    found = []
    for label, glibc, os_id in rows:
        if glibc is None:
            continue
        if claimed_for is not None:
            attributes = {**claimed_for, "arch": arch} | ({"os": os_id} if os_id else {})
            if not all(rule.permits(attributes) for rule in matrix.rules):
                continue
        found.append((label, glibc))
    return found


def plan_cells(
    matrix: Matrix,
    releases: Sequence[Release],
    *,
    extras: Sequence[str] = (),
    pythons: Sequence[str] = (),
    archs: Sequence[str] = (),
    glibcs: Sequence[Version] = (),
    index_url: Sequence[str] = (),
) -> list[Cell]:
    meta = matrix.wheel(meta_package(matrix))
    _check_filters(
        matrix, meta, extras=extras, pythons=pythons, archs=archs, glibcs=glibcs, index_url=index_url
    )
    claimed = claimed_floor(matrix)
    cells = []
    for release in releases:
        for framework in matrix.frameworks:
            if extras and framework.extra not in extras:
                continue
            for python in meta.python:
                if pythons and python not in pythons:
                    continue
                for arch in (a.name for a in matrix.archs):
                    if archs and arch not in archs:
                        continue
                    attributes = {
                        "release": release.name,
                        "framework": framework.name,
                        "python": python,
                        "arch": arch,
                    }
                    if not all(rule.permits(attributes) for rule in matrix.rules):
                        continue
                    targets = (
                        set(glibcs) if glibcs else {claimed, *(glibc for _, glibc in os_glibcs(matrix, arch))}
                    )
                    cells.extend(
                        _cells_of(
                            matrix,
                            meta,
                            release,
                            extra=framework.extra,
                            python=python,
                            arch=arch,
                            targets=sorted(targets),
                            index_url=index_url,
                        )
                    )
    return cells


def _check_filters(
    matrix: Matrix,
    meta: WheelPackage,
    *,
    extras: Sequence[str],
    pythons: Sequence[str],
    archs: Sequence[str],
    glibcs: Sequence[Version],
    index_url: Sequence[str],
) -> None:
    """Every filter names something the matrix has, and some index is known."""
    known_extras = [f.extra for f in matrix.frameworks]
    for extra in extras:
        check_choice("extra", extra, known_extras)
    for python in pythons:
        check_choice("python", python, list(meta.python))
    for arch in archs:
        check_choice("arch", arch, [a.name for a in matrix.archs])
    for glibc in glibcs:
        check_choice("glibc level (uv's --python-platform)", str(glibc), list(UV_GLIBC_LEVELS))
    if matrix.installs is None and not index_url:
        msg = f"{matrix.path}: no [installs] table: say which index to resolve from (or pass --index-url)"
        raise UsageError(msg)


def _cells_of(
    matrix: Matrix,
    meta: WheelPackage,
    release: Release,
    *,
    extra: str,
    python: str,
    arch: str,
    targets: Sequence[Version],
    index_url: Sequence[str],
) -> list[Cell]:
    """The cells of one extra, Python and arch: one per glibc level in ``targets``."""
    indexes = tuple(index_url) or (matrix.installs.indexes_for(extra, arch) if matrix.installs else ())
    if not indexes:
        msg = f"{matrix.path}: installs.index: no index serves extra {extra!r} on {arch}"
        raise UsageError(msg)
    requirement = f"{meta.name}[{extra}]=={release.version}"
    cells = []
    for target in targets:
        if str(target) not in UV_GLIBC_LEVELS:
            msg = (
                f"{matrix.path}: glibc {target} (a claimed floor or an OS row's) is not a "
                f"level uv resolves for; known: {', '.join(UV_GLIBC_LEVELS)}"
            )
            raise UsageError(msg)
        key = CellKey(release.name, extra, python, arch, target)
        cells.append(Cell(key, requirement, indexes))
    return cells


def _verdict(cell: Cell, resolution: Resolution, scans: dict[str, WheelScan]) -> Verdict:
    verdict = Verdict(cell, resolved=resolution.resolved)
    verdict.source_only = [f"{s.name}=={s.version}" for s in resolution.source_only]
    verdict.source_only += list(resolution.no_wheel)
    verdict.unknown_dependencies = [s.name for s in resolution.source_only if s.requires is None]
    if not resolution.resolved:
        verdict.problems.append(f"resolution failed: {resolution.error}")
        return verdict
    best: tuple[Version, dict[str, str] | None] | None = None
    arch = cell.key.arch
    for wheel in resolution.wheels:
        tag = tag_glibc(wheel.filename, arch)
        if tag is None:
            continue  # pure
        verdict.wheels += 1
        scan = scans[wheel.filename]
        verdict.bytes_read += scan.bytes_read
        verdict.problems += [f"{wheel.filename}: {error}" for error in scan.errors]
        candidates: list[tuple[Version, dict[str, str] | None]] = [(tag, None)]
        if scan.elf_glibc is not None and scan.set_by is not None:
            needs = Version(scan.elf_glibc)
            candidates.append((needs, {"wheel": wheel.filename, "member": scan.set_by}))
            if needs > tag:
                verdict.underclaims.append(
                    {"wheel": wheel.filename, "tag": str(tag), "needs": str(needs), "member": scan.set_by}
                )
        for candidate in candidates:
            # Ties go to the ELF member: it is the fact; the tag only repeats it.
            if best is None or candidate[0] > best[0] or (candidate[0] == best[0] and best[1] is None):
                best = candidate
    if best is not None:
        verdict.floor, verdict.set_by = best
    else:
        verdict.floor = Version("0")  # no platform wheel at all: pure Python loads anywhere
    return verdict


def run_cells(
    cells: Sequence[Cell],
    *,
    as_of: datetime.date | None,
    cache: Path | None,
    on_resolved: Callable[[Cell, Resolution], None] | None = None,
    on_scanned: Callable[[WheelScan], None] | None = None,
) -> list[Verdict]:
    """Resolve every cell, scan each unique wheel once, and judge."""

    def one(cell: Cell) -> Resolution:
        key = cell.key
        try:
            result = resolve(
                cell.requirement,
                python=key.python,
                arch=key.arch,
                glibc=key.target_glibc,
                indexes=cell.indexes,
                as_of=as_of,
            )
        except HttpError as error:
            result = Resolution(resolved=False, error=f"the index: {error}")
        if on_resolved is not None:
            on_resolved(cell, result)
        return result

    uv_binary()  # found once, before the threads
    with ThreadPoolExecutor(max_workers=RESOLVE_WORKERS) as pool:
        resolutions = list(pool.map(one, cells))
    scans: dict[str, WheelScan] = {}
    for arch in sorted({cell.key.arch for cell in cells}):
        unique = {
            wheel.filename: wheel
            for cell, resolution in zip(cells, resolutions, strict=True)
            if cell.key.arch == arch
            for wheel in resolution.wheels
            if tag_glibc(wheel.filename, arch) is not None
        }
        scans.update(scan_wheels(list(unique.values()), arch, cache=cache, on_done=on_scanned))
    return [_verdict(cell, resolution, scans) for cell, resolution in zip(cells, resolutions, strict=True)]
