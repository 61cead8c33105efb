"""One exception hierarchy; each class carries the exit code the CLI ends with.

Exit codes: 0 all good, 1 a build or check failed (after the others finished),
2 bad input (a wrong key, version, framework, file or flag), 130 interrupted.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BuildMatrixError",
    "CommandFailedError",
    "FailedError",
    "MatrixError",
    "Origin",
    "ToolMissingError",
    "UsageError",
    "check_choice",
    "did_you_mean",
]


class BuildMatrixError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FailedError(BuildMatrixError):
    """A build or a check failed; the others were finished and summarised first."""

    exit_code = 1


class CommandFailedError(FailedError):
    """An external command exited non-zero."""

    def __init__(self, command: list[str], returncode: int, stderr: str = "", shown: str = "") -> None:
        import shlex

        from buildmatrix.redact import redact

        # ``shown``: the command as it was echoed (short paths); the log has it in full.
        message = f"command failed with exit code {returncode}: {redact(shown or shlex.join(command))}"
        if stderr.strip():
            message += "\n" + redact(stderr.rstrip())
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class UsageError(BuildMatrixError):
    """Bad input from the user: a flag, a path, a name that does not exist."""

    exit_code = 2


class ToolMissingError(UsageError):
    """A required executable is not on PATH; the message says what to install."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value came from: file, dotted key path and (when known) line."""

    file: str
    key: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}" if self.key else where


class MatrixError(UsageError):
    """matrix.toml is malformed or inconsistent; names the file, key path and line."""

    def __init__(self, origin: Origin, problem: str) -> None:
        super().__init__(f"{origin}: {problem}")
        self.origin = origin
        self.problem = problem


def did_you_mean(value: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    """Raise ``UsageError`` (exit 2) naming the known values when ``value`` is unknown."""
    if value not in choices:
        known = ", ".join(choices)
        msg = f"unknown {what} {value!r}{did_you_mean(value, choices)}; known: {known}"
        raise UsageError(msg)
