"""The flags every command shares, each declared once with one meaning.

``--matrix`` and ``--debug`` come with every command (``common_parser``); a
command adds the others it takes with ``add_release``, ``add_format``,
``add_out`` and ``add_dry_run``. Where commands differ (which release they
take by default, where their output goes), the difference is a parameter, named
in the flag's help.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from buildmatrix._paths import expand_user, find_upward

__all__ = [
    "DEFAULT_MATRIX",
    "add_dry_run",
    "add_format",
    "add_out",
    "add_release",
    "add_tls_verify",
    "common_parser",
    "matrix_path",
]

DEFAULT_MATRIX = "matrix.toml"
FORMATS = ("table", "json")


def common_parser() -> argparse.ArgumentParser:
    """A parent parser with ``--matrix`` and ``--debug``, for every command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--matrix",
        type=Path,
        default=None,
        metavar="PATH",
        help="the matrix file (default: $BUILDMATRIX_MATRIX, else matrix.toml in this folder "
        "or the nearest one above it)",
    )
    common.add_argument("--debug", action="store_true", help="show a traceback for errors (for bug reports)")
    return common


def matrix_path(given: Path | None) -> Path:
    """--matrix, else $BUILDMATRIX_MATRIX, else matrix.toml here or in the nearest folder above."""
    if given is not None:
        return expand_user(given, "--matrix")
    named = os.environ.get("BUILDMATRIX_MATRIX")
    if named:
        return expand_user(Path(named), "$BUILDMATRIX_MATRIX")
    default = Path(DEFAULT_MATRIX)
    if default.exists():
        return default
    return find_upward(DEFAULT_MATRIX, Path.cwd()) or default


def add_release(parser: argparse.ArgumentParser, *, purpose: str, default: str) -> None:
    """``--release R`` (repeatable, ``args.release`` a list or None), resolved by
    ``loader.select_releases``; ``default`` says what the command takes without it."""
    parser.add_argument(
        "--release",
        action="append",
        metavar="R",
        help=f"{purpose} (repeatable; `0.7.1` finds `v0.7.1`); default: {default}",
    )


def add_format(
    parser: argparse.ArgumentParser,
    *,
    extra: Sequence[str] = (),
    help: str = "output format",
) -> None:
    """``--format``: ``table`` for people (the default), ``json`` for machines, plus ``extra``."""
    parser.add_argument("--format", choices=[*FORMATS, *extra], default="table", help=help)


def add_out(parser: argparse.ArgumentParser, *, metavar: str, help: str) -> None:
    """``--out PATH`` (``args.out`` a Path or None): where the command writes; ``help`` names its default."""
    parser.add_argument("--out", type=Path, metavar=metavar, help=help)


def add_dry_run(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--dry-run``: show what would run, run nothing."""
    parser.add_argument("--dry-run", action="store_true", help=help)


def add_tls_verify(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--tls-verify BOOL`` (default true): how a registry is spoken to; ``help`` says when it applies."""
    parser.add_argument("--tls-verify", type=_boolean, default=True, metavar="BOOL", help=help)


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    msg = f"{value!r} is not true or false"
    raise argparse.ArgumentTypeError(msg)
