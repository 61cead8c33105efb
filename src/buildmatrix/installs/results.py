"""The committed results of `buildmatrix installs`: written, read (validated), rendered, checked.

The file (``[installs] results`` in the matrix, e.g. ``docs/installs.json``)
holds the date, the indexes and the cells. ``buildmatrix docs`` renders it
offline as the effective glibc floor per extra and arch beside the claimed
one; ``buildmatrix verify`` fails when it contradicts the claimed floor or an
OS row's glibc. A file that does not validate is bad input naming the file
and the entry, never silently trusted.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from buildmatrix._files import write_text_atomic
from buildmatrix.errors import UsageError
from buildmatrix.installs.cells import claimed_floor, os_glibcs
from buildmatrix.model import Matrix, Release
from buildmatrix.verify.report import Check

__all__ = [
    "RESULTS_SCHEMA",
    "ResultCell",
    "Results",
    "check_results",
    "contradictions",
    "floor_table",
    "load_results",
    "write_results",
]

RESULTS_SCHEMA = 1
_FIELDS = ("release", "extra", "python", "arch", "target_glibc", "resolved", "floor", "set_by",
           "source_only", "underclaims", "wheels", "bytes_read", "ok")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResultCell:
    release: str
    extra: str
    python: str
    arch: str
    target_glibc: Version
    resolved: bool
    floor: Version | None
    set_by: dict[str, str] | None
    source_only: tuple[str, ...]
    ok: bool
    raw: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str, str, Version]:
        return (self.release, self.extra, self.python, self.arch, self.target_glibc)


@dataclass(frozen=True, slots=True)
class Results:
    path: Path
    date: str
    indexes: tuple[str, ...]
    as_of: str | None
    cells: tuple[ResultCell, ...]


def _version(value: object, where: str) -> Version:
    if not isinstance(value, str):
        msg = f"{where}: expected a version string, got {value!r}"
        raise UsageError(msg)
    try:
        return Version(value)
    except InvalidVersion:
        msg = f"{where}: {value!r} is not a version"
        raise UsageError(msg) from None


def _check_cell_fields(entry: dict[str, Any], where: str) -> None:
    """Each field of a committed cell has its type (the verdict is checked by ``_cell``)."""
    for name in ("release", "extra", "python", "arch"):
        if not isinstance(entry[name], str) or not entry[name]:
            msg = f"{where}.{name}: expected a non-empty string"
            raise UsageError(msg)
    for name in ("resolved", "ok"):
        if type(entry[name]) is not bool:
            msg = f"{where}.{name}: expected true or false"
            raise UsageError(msg)
    set_by = entry["set_by"]
    if set_by is not None and (
        not isinstance(set_by, dict) or not all(isinstance(set_by.get(k), str) for k in ("wheel", "member"))
    ):
        msg = f"{where}.set_by: expected null or {{wheel, member}} strings"
        raise UsageError(msg)
    for name in ("wheels", "bytes_read"):
        if type(entry[name]) is not int or entry[name] < 0:
            msg = f"{where}.{name}: expected a non-negative integer"
            raise UsageError(msg)
    underclaims = entry["underclaims"]
    if not isinstance(underclaims, list) or not all(
        isinstance(u, dict) and all(isinstance(u.get(k), str) for k in ("wheel", "tag", "needs"))
        for u in underclaims
    ):
        msg = f"{where}.underclaims: expected an array of {{wheel, tag, needs, member}}"
        raise UsageError(msg)
    source_only = entry["source_only"]
    if not isinstance(source_only, list) or not all(isinstance(s, str) for s in source_only):
        msg = f"{where}.source_only: expected an array of strings"
        raise UsageError(msg)


def _cell(entry: object, where: str) -> ResultCell:
    if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
        msg = f"{where}: a cell must have exactly the fields {', '.join(_FIELDS)}"
        raise UsageError(msg)
    _check_cell_fields(entry, where)
    set_by = entry["set_by"]
    source_only = entry["source_only"]
    floor = None if entry["floor"] is None else _version(entry["floor"], f"{where}.floor")
    target = _version(entry["target_glibc"], f"{where}.target_glibc")
    ok = bool(entry["ok"])
    # The verdict is recomputed, so a hand-edited "ok": true cannot hide a failure.
    consistent = entry["resolved"] and not source_only and floor is not None and floor <= target
    if ok and not consistent:
        msg = f"{where}.ok: true, but the cell's own fields say it fails (floor {floor}, target {target})"
        raise UsageError(msg)
    return ResultCell(
        release=entry["release"],
        extra=entry["extra"],
        python=entry["python"],
        arch=entry["arch"],
        target_glibc=target,
        resolved=entry["resolved"],
        floor=floor,
        set_by=set_by,
        source_only=tuple(source_only),
        ok=ok,
        raw=entry,
    )


def load_results(path: Path) -> Results | None:
    """The committed results, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        msg = f"{path}: cannot read the installs results: {error}"
        raise UsageError(msg) from None
    if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
        msg = f"{path}: not an installs results file of schema {RESULTS_SCHEMA}"
        raise UsageError(msg)
    date, indexes, as_of, cells = data.get("date"), data.get("indexes"), data.get("as_of"), data.get("cells")
    try:
        datetime.date.fromisoformat(str(date))
    except ValueError:
        msg = f"{path}: date: {date!r} is not a date (YYYY-MM-DD)"
        raise UsageError(msg) from None
    if not isinstance(indexes, list) or not indexes or not all(isinstance(i, str) for i in indexes):
        msg = f"{path}: indexes: expected a non-empty array of URLs"
        raise UsageError(msg)
    if as_of is not None and not isinstance(as_of, str):
        msg = f"{path}: as_of: expected null or a date"
        raise UsageError(msg)
    if not isinstance(cells, list):
        msg = f"{path}: cells: expected an array"
        raise UsageError(msg)
    parsed = tuple(_cell(entry, f"{path}: cells[{index}]") for index, entry in enumerate(cells))
    keys = [cell.key for cell in parsed]
    if len(set(keys)) != len(keys):
        msg = f"{path}: cells: the same release/extra/python/arch/target appears twice"
        raise UsageError(msg)
    return Results(path, str(date), tuple(indexes), as_of, parsed)


def write_results(
    path: Path,
    cells: Sequence[dict[str, Any]],
    *,
    indexes: Sequence[str],
    as_of: datetime.date | None,
    today: datetime.date,
) -> int:
    """Merge ``cells`` into the results file (a cell replaces the one with its key); atomic."""
    previous = load_results(path)
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    if previous is not None:
        for cell in previous.cells:
            merged[_key(cell.raw)] = cell.raw
    for entry in cells:
        merged[_key(entry)] = entry
    ordered = [merged[key] for key in sorted(merged, key=_sort_key)]
    known = list(dict.fromkeys([*indexes, *(previous.indexes if previous else ())]))
    document = {
        "schema": RESULTS_SCHEMA,
        "date": today.isoformat(),
        "as_of": None if as_of is None else as_of.isoformat(),
        "indexes": known,
        "cells": ordered,
    }
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")
    return len(ordered)


def _key(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(entry[name]) for name in ("release", "extra", "python", "arch", "target_glibc"))


def _sort_key(key: tuple[str, ...]) -> tuple[Any, ...]:
    return (*key[:4], Version(key[4]))


@dataclass(frozen=True, slots=True)
class Contradiction:
    cell: ResultCell
    claim: str  # "the claimed floor 2.28" | "Ubuntu 22.04 (glibc 2.35)"
    detail: str


def contradictions(matrix: Matrix, results: Results) -> list[Contradiction]:
    """Claims of the matrix (its floor, its OS rows) that a committed cell disproves."""
    claimed = claimed_floor(matrix)
    found = []
    for cell in results.cells:
        claims = []
        if cell.target_glibc == claimed:
            claims.append(f"the claimed floor glibc >={claimed}")
        claims += [
            f"{label} (glibc {glibc})"
            for label, glibc in os_glibcs(matrix, cell.arch, _attributes(matrix, cell))
            if glibc == cell.target_glibc
        ]
        if not claims or cell.ok:
            continue
        why = _why(cell)
        found += [Contradiction(cell, claim, why) for claim in claims]
    return found


def _attributes(matrix: Matrix, cell: ResultCell) -> dict[str, str]:
    """The rule attributes of a cell: the framework whose extra it is, its release and Python."""
    framework = next((f.name for f in matrix.frameworks if f.extra == cell.extra), cell.extra)
    return {"release": cell.release, "framework": framework, "python": cell.python}


def _why(cell: ResultCell) -> str:
    if not cell.resolved:
        return "does not resolve"
    parts = []
    if cell.floor is not None and cell.floor > cell.target_glibc:
        where = f" ({cell.set_by['wheel']}: {cell.set_by['member']})" if cell.set_by else ""
        parts.append(f"needs glibc {cell.floor}{where}")
    if cell.source_only:
        parts.append("no wheel for " + ", ".join(cell.source_only))
    return "; ".join(parts) or "not ok"


@dataclass(frozen=True, slots=True)
class FloorTable:
    """What the docs page shows: where the results come from, a table, and the contradicted claims."""

    source: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    contradicted: tuple[str, ...]


def floor_table(matrix: Matrix) -> FloorTable | None:
    """The effective glibc floor per release, extra, arch and Python beside the claimed one."""
    if matrix.installs is None:
        return None
    results = load_results(matrix.installs.results)
    if results is None:
        return None
    claimed = claimed_floor(matrix)
    groups: dict[tuple[str, str, str, str], list[ResultCell]] = {}
    for cell in results.cells:
        groups.setdefault((cell.release, cell.extra, cell.arch, cell.python), []).append(cell)
    order = {release.name: index for index, release in enumerate(matrix.releases)}
    rows = []
    for (release, extra, arch, python), cells in sorted(
        groups.items(), key=lambda item: (order.get(item[0][0], len(order)), *item[0][1:])
    ):
        rows.append(_floor_row((release, extra, arch, python), cells, claimed))
    found = contradictions(matrix, results)
    lines = tuple(
        f"{c.cell.release} [{c.cell.extra}] {c.cell.arch} Python {c.cell.python} contradicts "
        f"{c.claim}: {c.detail}."
        for c in found
    )
    source = (
        f"Measured by `buildmatrix installs` on {results.date} against {', '.join(results.indexes)}"
        + (f" as of {results.as_of}" if results.as_of else "")
        + ": each extra resolved for the platform (uv, nothing built), every chosen wheel's ELF "
        "version needs read. The effective floor is the highest glibc any chosen wheel needs or "
        "is tagged for, at the claimed floor; a package with no wheel (source only) fails a target."
    )
    header = ("Release", "Extra", "Arch", "Python", "Claimed", "Effective floor", "Set by",
              "Targets (glibc: installs and loads)", "Lowest glibc that works", "No wheel")  # fmt: skip
    return FloorTable(source, header, tuple(rows), lines)


def _floor_row(key: tuple[str, str, str, str], cells: list[ResultCell], claimed: Version) -> tuple[str, ...]:
    """One row of the floor table: the cell at the claimed floor, and every target's verdict."""
    release, extra, arch, python = key
    cells.sort(key=lambda cell: cell.target_glibc)
    at_claim = next((cell for cell in cells if cell.target_glibc == claimed), cells[0])
    floor = "does not resolve" if not at_claim.resolved else f">={at_claim.floor}"
    if at_claim.resolved and at_claim.source_only:
        floor += f" (without {', '.join(at_claim.source_only)})"
    set_by = f"`{at_claim.set_by['member']}` in {at_claim.set_by['wheel']}" if at_claim.set_by else ""
    lowest = next((cell.target_glibc for cell in cells if cell.ok), None)
    verdicts = ", ".join(f"{cell.target_glibc} {'✅' if cell.ok else '❌'}" for cell in cells)
    no_wheel = sorted({name for cell in cells for name in cell.source_only})
    contradicted = at_claim.target_glibc == claimed and not at_claim.ok
    return (
        release,
        f"`[{extra}]`",
        arch,
        python,
        f">={claimed}" + (" ❌" if contradicted else ""),
        floor,
        set_by,
        verdicts,
        "—" if lowest is None else str(lowest),
        ", ".join(no_wheel) or "—",
    )


def check_results(matrix: Matrix, releases: Sequence[Release] | None) -> list[Check]:
    """verify: one check per committed cell at a glibc the matrix claims (its floor, an OS row's)."""
    if matrix.installs is None:
        return []
    results = load_results(matrix.installs.results)
    if results is None:
        return []
    claimed = claimed_floor(matrix)
    names = None if releases is None else {release.name for release in releases}
    subject = str(results.path)
    checks = []
    for cell in results.cells:
        if names is not None and cell.release not in names:
            continue
        claims = [f"the claimed floor glibc >={claimed}"] if cell.target_glibc == claimed else []
        claims += [
            f"{label} (glibc {glibc})"
            for label, glibc in os_glibcs(matrix, cell.arch, _attributes(matrix, cell))
            if glibc == cell.target_glibc
        ]
        if not claims:
            continue
        checks.append(
            Check(
                subject=subject,
                name=(
                    f"{cell.release} [{cell.extra}] {cell.arch} py{cell.python} at glibc {cell.target_glibc}"
                ),
                expected="installs from wheels and loads on " + ", ".join(claims),
                found="ok" if cell.ok else _why(cell),
                ok=cell.ok,
                detail=""
                if cell.ok
                else f"measured {results.date}: fix the claim or the set, then rerun "
                "`buildmatrix installs --write`",
            )
        )
    return checks
