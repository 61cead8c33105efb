"""How the library tells a person what it is doing: one small interface, silent by default.

The library never writes to the screen. A long run (wheels, images) takes a
``Reporter`` and calls it; the command line passes one that renders a live bar
on a terminal and plain ``[3/10] ...`` lines in a CI log (``buildmatrix.cli.ui``).
Results that carry data (an audit verdict, a resolved cell) reach the caller as
typed callbacks instead, so the caller decides how they read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["SILENT", "Reporter", "Steps"]


class Steps(Protocol):
    """A counted run of steps (builds, images): where it is, and what stays in the log."""

    def advance(self, message: str) -> None:
        """One step is done; ``message`` says which and how it ended."""

    def note(self, message: str) -> None:
        """A line that stays (a step starting, where its log is), above a live bar if there is one."""


class Reporter(Protocol):
    def note(self, message: str) -> None:
        """A line a person reads as it happens (a note, a wait)."""

    def command(self, shown: str) -> None:
        """An external command about to run, as a person would type it (see ``_call.echo_to``)."""

    def steps(self, description: str, total: int) -> AbstractContextManager[Steps]:
        """Report ``total`` steps while the block runs."""


class _Silent:
    """Reports nothing: the default for library callers that show no progress."""

    def note(self, message: str) -> None:
        pass

    def command(self, shown: str) -> None:
        pass

    def advance(self, message: str) -> None:
        pass

    @contextmanager
    def steps(self, description: str, total: int) -> Iterator[Steps]:
        yield self


SILENT: Reporter = _Silent()
