"""The ``buildmatrix`` command line: one thin module per subcommand.

Each module in this package defines ``HELP``, ``configure(parser)`` and
``run(args) -> int``; the work itself happens in the library modules one level
up. ``main`` turns every ``BuildMatrixError`` into its message and exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from types import ModuleType

from buildmatrix import __version__
from buildmatrix._paths import check_environment, is_usage_errno
from buildmatrix.cli.options import common_parser, matrix_path
from buildmatrix.errors import BuildMatrixError

__all__ = ["main"]

# Subcommand name -> module in this package. Order is the order of --help.
COMMANDS: dict[str, str] = {
    "plan": "buildmatrix.cli.plan",
    "wheels": "buildmatrix.cli.wheels",
    "audit": "buildmatrix.cli.audit",
    "images": "buildmatrix.cli.images",
    "docs": "buildmatrix.cli.docs",
    "ci": "buildmatrix.cli.ci",
    "verify": "buildmatrix.cli.verify",
    "installs": "buildmatrix.cli.installs",
}


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that subcommand (its module alone is imported)."""
    parser = argparse.ArgumentParser(
        prog="buildmatrix",
        description=(
            "Turn one matrix.toml into every release artifact (wheels, images, docs, CI "
            "matrices) and prove the artifacts agree with it."
        ),
        epilog="Exit codes: 0 ok, 1 a build or check failed, 2 bad input.",
    )
    parser.add_argument("--version", action="version", version=f"buildmatrix {__version__}")
    common = common_parser()
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        module = _command_module(name)
        sub = subparsers.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    previous = None
    if threading.current_thread() is threading.main_thread():
        # A CI cancel (SIGTERM) cleans up like Ctrl-C: children stopped, temporary folders removed.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # also during start-up, before a command runs
        print("buildmatrix: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as error:
        # Python 3.11 wraps a Ctrl-C that lands in a class body being created (an import
        # at start-up) in "RuntimeError: Error calling __set_name__".
        if not isinstance(error.__cause__, KeyboardInterrupt):
            raise
        print("buildmatrix: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    # The top level has only --help and --version, so the first other word is the
    # command; building its parser alone spares a run the import of every other
    # command's library (start-up is most of a no-op `wheels` rerun).
    first = next((word for word in argv if not word.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        check_environment(os.environ)
        args.matrix = matrix_path(args.matrix)
        from buildmatrix._call import echo_to
        from buildmatrix.cli import ui  # the command's module imported it already

        with echo_to(ui.SCREEN):  # the commands it runs are shown on stderr
            code: int = args.run(args)
    except BuildMatrixError as error:
        if args.debug:
            raise
        from buildmatrix.redact import redact

        print(f"buildmatrix: error: {redact(error.message)}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        # A file or folder the checks up front could not foresee (removed meanwhile,
        # a full disk): its message, never a traceback.
        if args.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"buildmatrix: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2 if is_usage_errno(error) else 1
    return code
