"""``buildmatrix docs``: write (or check) the support-matrix page generated from the matrix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from buildmatrix import docs
from buildmatrix._files import write_text_atomic
from buildmatrix._paths import expand_user, output_dir, output_file
from buildmatrix.cli import ui
from buildmatrix.cli.options import add_out
from buildmatrix.errors import FailedError, UsageError
from buildmatrix.loader import load_matrix

HELP = "generate docs/support-matrix.md from the matrix, or --check that the committed page is in sync"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a unified diff when the page differs from a fresh render",
    )
    add_out(
        parser,
        metavar="PATH",
        help=f"the page to write or check (default: {docs.DEFAULT_OUT} beside the matrix file)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings about suspicious matrix data as failures (exit 1)",
    )


def run(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    out: Path = args.out if args.out is not None else matrix.root / docs.DEFAULT_OUT
    out = expand_user(out, "--out")
    if out.is_dir():
        msg = f"--out {out} is a folder; name the page's file (e.g. {out / Path(docs.DEFAULT_OUT).name})"
        raise UsageError(msg)
    if not args.check:
        if args.out is None:  # the default page's folder is made; a typed one must exist
            output_dir(out.parent, "the docs folder")
        out = output_file(out, "--out")
    fresh = docs.render(matrix)
    found = docs.warnings(matrix)
    for warning in found:
        # One unwrapped line each: CI logs and grep read them whole.
        print(f"buildmatrix: warning: {warning}", file=sys.stderr)

    shown = _display(out)
    if args.check:
        if not out.is_file():
            msg = f"{shown} does not exist; run `buildmatrix docs` (or `nox -s docs`) and commit it"
            raise FailedError(msg)
        try:
            committed = out.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            msg = f"cannot read {shown}: {error}"
            raise UsageError(msg) from error
        difference = docs.diff(committed, fresh, shown)
        if difference:
            sys.stdout.write(difference)
            sys.stdout.flush()
            msg = (
                f"{shown} is out of date with {args.matrix}: run `buildmatrix docs` "
                "(or `nox -s docs`) and commit the result"
            )
            raise FailedError(msg)
        ui.stderr.print(f"{shown} is in sync with {args.matrix}", markup=False)
    else:
        previous = out.read_text(encoding="utf-8") if out.is_file() else None
        if previous == fresh:
            ui.stderr.print(f"{shown} is already up to date", markup=False)
        else:
            write_text_atomic(out, fresh)
            ui.stderr.print(f"wrote {shown} ({len(fresh.splitlines())} lines)", markup=False)

    if args.strict and found:
        msg = f"{len(found)} warning(s) about the matrix data (--strict)"
        raise FailedError(msg)
    return 0


def _display(path: Path) -> str:
    """The path relative to the current folder when it is inside it (shorter diffs and messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
