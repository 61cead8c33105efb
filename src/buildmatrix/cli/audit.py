"""``buildmatrix audit``: check wheels' glibc tags the way auditwheel would, hermetically."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from buildmatrix.audit import WheelAudit, audit_wheels, check_policy_name, find_wheels, printable
from buildmatrix.cli import ui
from buildmatrix.cli.options import add_format
from buildmatrix.errors import UsageError

if TYPE_CHECKING:
    from buildmatrix.model import Matrix

HELP = (
    "audit wheels' platform tags: auditwheel's sym_tag/overall_tag (hermetic), the exact "
    "glibc needed, and violations of the tag, the allow list and the matrix's policy floor"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="a wheel or a folder of wheels (default: wheelhouse/ beside the matrix, "
        "where `buildmatrix wheels` publishes)",
    )
    parser.add_argument(
        "--policy",
        metavar="NAME",
        help="floor every wheel must fit, e.g. manylinux_2_28 (default: each package's "
        "`policy` in the matrix; wheels not in the matrix are held to their own tag)",
    )
    add_format(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="threads reading wheel members (default: the usable CPUs)",
    )
    parser.epilog = (
        "Exit codes: 0 every wheel is ok, 1 some wheel has a violation (glibc-underclaim, "
        "external-lib, policy, isa, rpath, libc, layout, corrupt), 2 bad usage, no wheels to audit, "
        "or a file that is not a readable zip (every other wheel is still audited and reported)."
    )


def run(args: argparse.Namespace) -> int:
    if args.policy is not None:
        check_policy_name(args.policy)
    if args.jobs is not None and args.jobs < 1:
        msg = f"--jobs must be at least 1, got {args.jobs}"
        raise UsageError(msg)
    matrix = _matrix_if_any(args.matrix)
    default = matrix.wheelhouse if matrix is not None else Path("wheelhouse")
    paths: list[Path] = args.paths or [default]
    if not args.paths and not default.is_dir():
        msg = f"no {default}/ folder: build wheels first (`nox -s wheels`) or name wheels or folders to audit"
        raise UsageError(msg)
    wheels = find_wheels(paths)
    if not wheels:
        msg = "no wheels (*.whl) found in " + ", ".join(str(p) for p in paths)
        raise UsageError(msg)
    with ui.progress("auditing wheels", len(wheels)) as progress:
        results = audit_wheels(
            wheels,
            matrix=matrix,
            policy=args.policy,
            jobs=args.jobs,
            on_result=lambda audit: progress.advance(
                f"{printable(audit.wheel)}: {'ok' if audit.ok else 'FAILED'}"
            ),
        )
    if args.format == "json":
        ui.emit_json([audit.to_json() for audit in results])
    else:
        _print_table(results)
    if any(audit.unreadable for audit in results):
        return 2  # unreadable input, reported above with everything else
    return 0 if all(audit.ok for audit in results) else 1


def _matrix_if_any(path: Path) -> Matrix | None:
    """The matrix when there is one; the audit works without it (floors from --policy).

    Only the default ``./matrix.toml`` may be absent; a matrix that was named
    (``--matrix`` or ``$BUILDMATRIX_MATRIX``) must exist.
    """
    from buildmatrix.cli.options import DEFAULT_MATRIX
    from buildmatrix.loader import load_matrix

    named = "BUILDMATRIX_MATRIX" in os.environ or path != Path(DEFAULT_MATRIX)
    if not named and not path.exists():
        return None
    return load_matrix(path)


def _print_table(results: list[WheelAudit]) -> None:
    rows = []
    for audit in results:
        rows.append(
            [
                escape(printable(audit.wheel)),
                "pure" if audit.pure else escape(printable(".".join(audit.platform_tags))),
                audit.sym_tag or "",
                audit.overall_tag or "",
                audit.glibc or "",
                audit.floor or "",
                "ok" if audit.ok else f"{len(audit.violations)} violation(s)",
            ]
        )
    failed = sum(not audit.ok for audit in results)
    ui.stdout.print(
        ui.table(
            f"{len(results)} wheels audited, {failed} with violations",
            ["wheel", "tag", "sym_tag", "overall_tag", "glibc", "floor", "verdict"],
            rows,
        )
    )
    # Names come from the wheels: escaped, so a member name cannot rewrite the log.
    for audit in results:
        for note in audit.notes:
            ui.stdout.print(f"{printable(audit.wheel)}: note: {printable(note)}", markup=False)
        for violation in audit.violations:
            ui.stdout.print(
                f"{printable(audit.wheel)}: {violation.kind}: {printable(violation.file)}: "
                f"{printable(violation.detail)}",
                markup=False,
            )
