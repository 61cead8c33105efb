"""The one wrapper every external command goes through.

It echoes the command (shell-quoted, for copy-paste) to the reporter the
command line installs with ``echo_to``, finds the executable first so a missing
tool is a clear message rather than a traceback, never uses a shell, and on
failure shows what the command printed on stderr.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Literal, overload

from buildmatrix.errors import CommandFailedError, ToolMissingError
from buildmatrix.progress import SILENT, Reporter

__all__ = [
    "call",
    "echo_alias",
    "echo_to",
    "format_command",
    "short_command",
    "stop_process_group",
    "which",
]

# What to install when a tool is missing; the key is the executable name.
INSTALL_HINTS: dict[str, str] = {
    "buildah": "install it with `apt-get install buildah` (Debian/Ubuntu)",
    "docker": "install Docker with the buildx plugin, or use --engine buildah",
    "gcc": "install a C compiler (`apt-get install gcc` or `build-essential`)",
    "auditwheel": "`pip install auditwheel`",
    "cibuildwheel": "`pip install cibuildwheel`",
    "git": "`apt-get install git`",
}


def format_command(args: Sequence[str | os.PathLike[str]]) -> str:
    """The command as a shell would read it, with URL credentials redacted (it is shown and logged)."""
    from buildmatrix.redact import redact

    return redact(shlex.join(str(a) for a in args))


# Folder -> short name used when echoing commands (e.g. a run's work folder -> "$WORK").
_ECHO_ALIASES: dict[str, str] = {}


@contextlib.contextmanager
def echo_alias(folder: Path, name: str) -> Iterator[None]:
    """While active, echoes show ``folder`` as ``name`` (the log keeps the full command)."""
    key = str(folder)
    _ECHO_ALIASES[key] = name
    try:
        yield
    finally:
        _ECHO_ALIASES.pop(key, None)


# Who is shown the echoed commands; the library alone shows them to no one.
_echo_reporter: Reporter = SILENT


@contextlib.contextmanager
def echo_to(reporter: Reporter) -> Iterator[None]:
    """While active, every echoed command goes to ``reporter.command`` (from any thread)."""
    global _echo_reporter  # noqa: PLW0603 - one destination for the whole process, as echo_alias
    previous, _echo_reporter = _echo_reporter, reporter
    try:
        yield
    finally:
        _echo_reporter = previous


def short_command(args: Sequence[str | os.PathLike[str]]) -> str:
    """The command as echoed to a person: aliased folders, paths relative to here when inside."""
    here = str(Path.cwd())
    shown = []
    for original in (str(a) for a in args):
        arg = original
        for folder, name in sorted(_ECHO_ALIASES.items(), key=lambda item: -len(item[0])):
            arg = arg.replace(folder, name)
        if arg.startswith(here + os.sep):
            arg = arg[len(here) + 1 :]
        shown.append(arg)
    return " ".join(a if a.startswith("$") and "'" not in a else shlex.quote(a) for a in shown)


def which(program: str, path: str | None = None) -> str:
    """The executable ``program`` names, looked up in ``path`` (default: $PATH)."""
    found = shutil.which(program, path=path)
    if found is None:
        hint = INSTALL_HINTS.get(program, f"install `{program}` and put it on PATH")
        msg = f"`{program}` was not found on PATH: {hint}"
        raise ToolMissingError(msg)
    return found


@overload
def call(
    *args: str | os.PathLike[str],
    capture_stdout: Literal[False] = ...,
    env: Mapping[str, str] | None = ...,
    cwd: Path | None = ...,
    log: IO[str] | None = ...,
    echo: bool = ...,
) -> None: ...


@overload
def call(
    *args: str | os.PathLike[str],
    capture_stdout: Literal[True],
    env: Mapping[str, str] | None = ...,
    cwd: Path | None = ...,
    log: IO[str] | None = ...,
    echo: bool = ...,
) -> str: ...


def call(
    *args: str | os.PathLike[str],
    capture_stdout: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: IO[str] | None = None,
    echo: bool = True,
) -> str | None:
    """Run one command as an argument list.

    ``log``: when given, stdout and stderr go to this file (per-target logs) and
    the tail of it is shown on failure; otherwise stderr is captured and shown
    on failure. ``env`` entries are added to the current environment.
    """
    command = [str(a) for a in args]
    # A command run with its own PATH (a test venv first) is found on that PATH.
    command[0] = which(command[0], None if env is None else env.get("PATH"))
    if echo:
        _echo_reporter.command(short_command(args))
    if log is not None:
        print("+ " + format_command(args), file=log, flush=True)
    full_env = None if env is None else {**os.environ, **env}
    # Its own process group, so an interrupt stops the whole tree (uv's build
    # backend, the compiler), not only the direct child.
    with subprocess.Popen(
        command,
        env=full_env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE if capture_stdout else log,
        stderr=log if log is not None else subprocess.PIPE,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate()
        except BaseException:  # Ctrl-C, SIGTERM turned into KeyboardInterrupt by the CLI
            stop_process_group(process)
            raise
    if process.returncode != 0:
        stderr = stderr or ""
        if log is not None and hasattr(log, "name"):
            log.flush()
            stderr = _tail(Path(log.name))
        raise CommandFailedError(
            [str(a) for a in args], process.returncode, stderr, shown=short_command(args)
        )
    return stdout if capture_stdout else None


def stop_process_group(process: subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after ``grace`` seconds.

    Returns once the group is empty (or after another ``grace``), so the caller can
    remove the child's work folder without a straggler writing into it again.
    """
    group = process.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                process.poll()
            try:
                os.killpg(group, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
