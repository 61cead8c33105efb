"""The ``buildmatrix`` console script: Ctrl-C while the CLI is still importing is no traceback."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    try:
        from buildmatrix.cli import main as cli_main
    except KeyboardInterrupt:
        print("buildmatrix: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as error:  # Python 3.11: a Ctrl-C inside a class being created
        if not isinstance(error.__cause__, KeyboardInterrupt):
            raise
        print("buildmatrix: interrupted", file=sys.stderr)
        return 130
    return cli_main()
