"""``buildmatrix installs``: the real glibc floor and installability of every extra, from the index."""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from buildmatrix.cli import ui
from buildmatrix.cli.options import add_format, add_release
from buildmatrix.errors import UsageError

if TYPE_CHECKING:
    from buildmatrix.installs.cells import Cell, Verdict
    from buildmatrix.model import Matrix

HELP = (
    "resolve each extra of the meta package for every platform the matrix allows (uv, nothing "
    "built), read every chosen wheel's ELF version needs through HTTP range requests, and report "
    "the effective glibc floor and installability per cell"
)


def _glibc(raw: str) -> Version:
    try:
        version = Version(raw)
    except InvalidVersion:
        msg = f"{raw!r} is not a glibc version such as 2.35"
        raise argparse.ArgumentTypeError(msg) from None
    if version.major != 2 or len(version.release) != 2:
        msg = f"{raw!r} is not a glibc version such as 2.35"
        raise argparse.ArgumentTypeError(msg)
    return version


def _date(raw: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        msg = f"{raw!r} is not a date (YYYY-MM-DD)"
        raise argparse.ArgumentTypeError(msg) from None


def configure(parser: argparse.ArgumentParser) -> None:
    add_release(parser, purpose="only this release", default="the released ones")
    parser.add_argument("--extra", action="append", metavar="E", help="only this extra (repeatable)")
    parser.add_argument("--python", action="append", metavar="X.Y", help="only this Python (repeatable)")
    parser.add_argument("--arch", action="append", metavar="A", help="only this arch (repeatable)")
    parser.add_argument(
        "--glibc",
        nargs="+",
        type=_glibc,
        metavar="X.Y",
        help="target glibc levels (default: the claimed floor and every OS row's glibc)",
    )
    parser.add_argument(
        "--as-of",
        type=_date,
        metavar="DATE",
        help="resolve as the index was at the end of DATE (UTC): uv's --exclude-newer",
    )
    parser.add_argument(
        "--index-url",
        action="append",
        metavar="URL",
        help="resolve from this index instead of the matrix's [installs] indexes "
        "(repeatable; the first is primary)",
    )
    add_format(parser)
    parser.add_argument(
        "--write",
        action="store_true",
        help="merge the cells into the committed results file ([installs] results) "
        "that the docs page and verify read",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="per-wheel scan cache, keyed by sha256 (default: ~/.cache/buildmatrix/installs)",
    )
    parser.add_argument("--no-cache", action="store_true", help="scan every wheel again")
    parser.epilog = (
        "Exit codes: 0 every cell is ok, 1 some cell is not (a failed resolution, a package with no "
        "wheel, a floor above the target, an unreadable wheel), 2 bad usage."
    )


def run(args: argparse.Namespace) -> int:
    from buildmatrix.loader import load_matrix

    matrix = load_matrix(args.matrix)
    cells = _cells(args, matrix)
    started = time.monotonic()
    verdicts = _run_cells(args, cells)
    elapsed = time.monotonic() - started
    records = [verdict.to_json() for verdict in verdicts]
    if args.format == "json":
        ui.emit_json(records)
    else:
        _print_table(verdicts)
    _print_summary(verdicts, elapsed)
    _print_problems(verdicts)
    if args.write:
        _write(args, matrix, verdicts, records)
    return 0 if all(verdict.ok for verdict in verdicts) else 1


def _cells(args: argparse.Namespace, matrix: Matrix) -> list[Cell]:
    """The cells the flags select (releases: the published ones unless named)."""
    from buildmatrix.installs.cells import plan_cells
    from buildmatrix.loader import select_releases, url_problem

    for url in args.index_url or ():
        problem = url_problem(url, ("https", "http"))
        if problem:
            raise UsageError(f"--index-url: {problem}")
    releases = (
        select_releases(matrix, args.release)
        if args.release
        else tuple(r for r in matrix.releases if r.is_published)
    )
    cells = plan_cells(
        matrix,
        releases,
        extras=args.extra or (),
        pythons=args.python or (),
        archs=args.arch or (),
        glibcs=args.glibc or (),
        index_url=args.index_url or (),
    )
    if not cells:
        msg = "no cells: the filters and the matrix's rules leave nothing to check"
        raise UsageError(msg)
    return cells


def _run_cells(args: argparse.Namespace, cells: list[Cell]) -> list[Verdict]:
    from buildmatrix.installs.cells import run_cells
    from buildmatrix.installs.scan import default_cache

    cache = None if args.no_cache else (args.cache or default_cache())
    ui.stderr.print(f"{len(cells)} cells: resolving", markup=False)
    with ui.progress("resolving", len(cells)) as resolving:
        return run_cells(
            cells,
            as_of=args.as_of,
            cache=cache,
            on_resolved=lambda cell, result: resolving.advance(
                f"{cell.requirement} {cell.key.arch} py{cell.key.python} glibc {cell.key.target_glibc}: "
                + (f"{len(result.wheels)} wheels" if result.resolved else "FAILED to resolve")
            ),
            on_scanned=lambda scan: ui.stderr.print(
                f"scanned {scan.filename}: glibc {scan.elf_glibc or '-'}"
                + (" (cached)" if scan.cached else f", {scan.bytes_read} of {scan.size} bytes"),
                markup=False,
                soft_wrap=True,
            ),
        )


def _print_problems(verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        key = verdict.cell.key
        label = f"{verdict.cell.requirement} {key.arch} py{key.python} glibc {key.target_glibc}"
        for problem in verdict.problems:
            ui.stderr.print(f"{label}: {problem}", markup=False, soft_wrap=True)
        for name in verdict.unknown_dependencies:
            ui.stderr.print(
                f"{label}: {name} has no wheel and no static metadata (PEP 643): "
                "its dependencies are unknown",
                markup=False,
                soft_wrap=True,
            )


def _write(args: argparse.Namespace, matrix: Matrix, verdicts: list[Verdict], records: list[Any]) -> None:
    """--write: the cells merged into the committed results file."""
    from buildmatrix.installs.results import write_results
    from buildmatrix.redact import redact_url

    if matrix.installs is None:
        msg = f"{matrix.path}: --write needs [installs] results = PATH"
        raise UsageError(msg)
    indexes = sorted({url for verdict in verdicts for url in verdict.cell.indexes})
    total = write_results(
        matrix.installs.results,
        records,
        indexes=[redact_url(url) for url in indexes],
        as_of=args.as_of,
        today=datetime.datetime.now(datetime.UTC).date(),
    )
    ui.stderr.print(f"wrote {matrix.installs.results} ({total} cells)", markup=False)


def _print_table(verdicts: list) -> None:  # type: ignore[type-arg]
    rows = []
    for verdict in verdicts:
        key = verdict.cell.key
        set_by = f"{verdict.set_by['wheel']}: {verdict.set_by['member']}" if verdict.set_by else ""
        rows.append(
            [
                key.release,
                key.extra,
                key.python,
                key.arch,
                str(key.target_glibc),
                "" if verdict.floor is None else str(verdict.floor),
                set_by,
                ", ".join(verdict.source_only),
                str(len(verdict.underclaims)),
                str(verdict.wheels),
                "ok" if verdict.ok else ("UNRESOLVED" if not verdict.resolved else "FAILED"),
            ]
        )
    failed = sum(not verdict.ok for verdict in verdicts)
    ui.stdout.print(
        ui.table(
            f"{len(verdicts)} cells, {failed} not ok",
            [
                "release",
                "extra",
                "python",
                "arch",
                "target",
                "floor",
                "set by",
                "source only",
                "underclaims",
                "wheels",
                "verdict",
            ],
            rows,
        )
    )


def _print_summary(verdicts: list, elapsed: float) -> None:  # type: ignore[type-arg]
    """Per release/extra/python/arch: the lowest target glibc at which it installs from wheels and loads."""
    groups: dict[tuple[str, str, str, str], list] = {}  # type: ignore[type-arg]
    for verdict in verdicts:
        key = verdict.cell.key
        groups.setdefault((key.release, key.extra, key.python, key.arch), []).append(verdict)
    for (release, extra, python, arch), members in sorted(groups.items()):
        good = sorted(v.cell.key.target_glibc for v in members if v.ok)
        floors = {str(v.floor) for v in members if v.floor is not None}
        lowest = f"installs and loads from glibc {good[0]}" if good else "installs at none of the targets"
        floor_text = ", ".join(sorted(floors)) or "?"
        ui.stderr.print(
            f"{release} [{extra}] py{python} {arch}: effective floor {floor_text}; {lowest}",
            markup=False,
            soft_wrap=True,
        )
    total = sum(v.bytes_read for v in verdicts)
    ui.stderr.print(f"{len(verdicts)} cells in {elapsed:.1f} s, {total} bytes read", markup=False)
