"""A reporter for tests: it keeps what the library told it, in order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from buildmatrix.progress import Steps


@dataclass
class Recorder:
    """A reporter that keeps what it was told, in order."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.events.append(("note", message))

    def command(self, shown: str) -> None:
        self.events.append(("command", shown))

    def advance(self, message: str) -> None:
        self.events.append(("advance", message))

    @contextmanager
    def steps(self, description: str, total: int) -> Iterator[Steps]:
        self.events.append(("steps", f"{description} {total}"))
        yield self
        self.events.append(("end", description))
