"""Paths and environment from the user, checked before any work starts.

Every flag or variable naming a file to read or a place to write goes through
here, so a wrong one is a ``UsageError`` (exit 2) naming the flag and the path
instead of a traceback halfway through a run. Output files never create
folders: a typo in ``--out /new/paht/x.md`` is reported, not silently built.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from buildmatrix.errors import UsageError

__all__ = [
    "MAX_INPUT_BYTES",
    "check_environment",
    "expand_user",
    "find_upward",
    "output_dir",
    "output_file",
    "read_regular_text",
]

# matrix.toml is a few dozen KiB; anything past this is not a matrix (or a mistake).
MAX_INPUT_BYTES = 4 * 1024 * 1024


def expand_user(path: Path, what: str) -> Path:
    """``~`` and ``~user`` expanded; an unknown user is bad input."""
    try:
        return path.expanduser()
    except RuntimeError:
        msg = f"{what}: cannot expand {str(path)!r}: no such user"
        raise UsageError(msg) from None


def read_regular_text(path: Path, what: str, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Opened without blocking, so a FIFO or a device is refused instead of
    waiting forever for a writer; the size is checked on the open file.
    """
    path = expand_user(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        msg = f"{what} not found: {path}"
        raise UsageError(msg) from None
    except OSError as error:
        msg = f"cannot read {what} {path}: {error.strerror}"
        raise UsageError(msg) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
        msg = f"{what} {path} is {kind}"
        raise UsageError(msg)
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            msg = f"{what} {path} is {info.st_size} bytes; the limit is {limit}"
            raise UsageError(msg)
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            msg = f"cannot read {what} {path}: {error.strerror}"
            raise UsageError(msg) from None
    if len(data) > limit:
        msg = f"{what} {path} is larger than the limit of {limit} bytes"
        raise UsageError(msg)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        msg = f"{what} {path} is not UTF-8 text: {error}"
        raise UsageError(msg) from None


def output_dir(path: Path, flag: str, *, create: bool = True) -> Path:
    """A folder to write into: created (with parents) when missing, else must be a writable folder."""
    path = expand_user(path, flag)
    if path.exists() and not path.is_dir():
        msg = f"{flag} {path} is a file, not a folder"
        raise UsageError(msg)
    if not path.exists():
        if not create:
            return path
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            msg = f"{flag} {path}: cannot create the folder: {error.strerror}"
            raise UsageError(msg) from None
    if not os.access(path, os.W_OK | os.X_OK):
        msg = f"{flag} {path}: the folder is not writable"
        raise UsageError(msg)
    return path


def output_file(path: Path, flag: str) -> Path:
    """A file to (re)write: its folder must exist and be writable; the path must not be a folder."""
    path = expand_user(path, flag)
    if path.is_dir():
        msg = f"{flag} {path} is a folder; name a file"
        raise UsageError(msg)
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist (folders are not created)"
        msg = f"{flag} {path}: {parent} {what}"
        raise UsageError(msg)
    if not os.access(parent, os.W_OK | os.X_OK):
        msg = f"{flag} {path}: the folder {parent} is not writable"
        raise UsageError(msg)
    if path.exists() and not os.access(path, os.W_OK):
        msg = f"{flag} {path} is not writable"
        raise UsageError(msg)
    return path


def find_upward(name: str, start: Path) -> Path | None:
    """``name`` in ``start`` or the nearest folder above it (as git and nox look for their files)."""
    for folder in (start, *start.parents):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def check_environment(environ: dict[str, str] | os._Environ[str]) -> None:
    """Variables the run depends on, checked once at start-up."""
    epoch = environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and not (epoch.isascii() and epoch.isdigit() and len(epoch) <= 12):
        msg = f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number of seconds since 1970 (unset it or fix it)"
        raise UsageError(msg)


def is_usage_errno(error: OSError) -> bool:
    """An OS error that says the path given was wrong, rather than the machine failing."""
    return error.errno in {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EEXIST,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
