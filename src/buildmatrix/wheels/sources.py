"""A package's source tree: which files it has, their digest, its provenance, its staging.

The file set is what a fresh clone would hold plus local edits: inside a git
work tree ``git ls-files --cached --others --exclude-standard``; elsewhere a
walk that leaves out build outputs and caches. The same set is hashed for the
incremental check and copied into the staging folder, so a build never writes
into the user's tree and never sees stale build output.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildmatrix import _call
from buildmatrix.errors import BuildMatrixError, UsageError

__all__ = ["Provenance", "SourceTree", "read_source_tree"]

# Left out of the walk when the source is not in a git work tree.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".buildmatrix",
        "__pycache__",
        ".venv",
        "venv",
        ".nox",
        ".tox",
        ".eggs",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        "build",
        "dist",
        "wheelhouse",
    }
)
_SKIP_SUFFIXES = (".pyc", ".pyo", ".o", ".egg-info")


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """The git commit the source came from; ``dirty`` when the tree has local changes."""

    commit: str | None
    dirty: bool
    commit_time: int | None  # seconds since the epoch, for SOURCE_DATE_EPOCH

    def to_json(self) -> dict[str, Any]:
        return {"git_commit": self.commit, "dirty": self.dirty}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceTree:
    root: Path
    label: str  # how the manifest names it: relative to the matrix's folder when inside
    files: tuple[str, ...]  # POSIX paths relative to root, sorted
    digest: str  # sha256 over every file's path, mode and content
    provenance: Provenance

    def stage(self, destination: Path) -> None:
        """Copy the file set into ``destination`` (which must not exist)."""
        destination.mkdir(parents=True)
        for relative in self.files:
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / relative, target)


def read_source_tree(root: Path, *, label: str | None = None, exclude: tuple[Path, ...] = ()) -> SourceTree:
    """The package at ``root``; files under ``exclude`` (the output folder, when it is
    inside the package) are neither hashed nor staged."""
    if not (root / "pyproject.toml").is_file() and not (root / "setup.py").is_file():
        msg = f"{root} is not a Python package folder (no pyproject.toml or setup.py)"
        raise UsageError(msg)
    git_files, provenance = _git_files(root)
    files = git_files if git_files is not None else _walk(root)
    inside = [
        folder.resolve().relative_to(root.resolve()).as_posix()
        for folder in exclude
        if folder.resolve().is_relative_to(root.resolve()) and folder.resolve() != root.resolve()
    ]
    if inside:
        files = tuple(f for f in files if not any(f == d or f.startswith(d + "/") for d in inside))
    return SourceTree(
        root=root,
        label=str(root) if label is None else label,
        files=files,
        digest=_digest(root, files),
        provenance=provenance,
    )


def _git(root: Path, *args: str) -> str | None:
    try:
        return _call.call("git", "-C", str(root), *args, capture_stdout=True, echo=False)
    except BuildMatrixError:  # not a work tree, or no git at all
        return None


def _git_files(root: Path) -> tuple[tuple[str, ...] | None, Provenance]:
    listing = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
    if listing is None:
        return None, Provenance(commit=None, dirty=False, commit_time=None)
    files = sorted({name for name in listing.split("\0") if name and (root / name).is_file()})
    head = _git(root, "log", "-1", "--format=%H %ct")
    status = _git(root, "status", "--porcelain", "--", ".")
    commit, commit_time = None, None
    if head and head.strip():
        commit, _, seconds = head.strip().partition(" ")
        commit_time = int(seconds)
    return tuple(files), Provenance(
        commit=commit, dirty=bool(status and status.strip()), commit_time=commit_time
    )


def _walk(root: Path) -> tuple[str, ...]:
    found: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(_SKIP_SUFFIXES)]
        for name in names:
            if name.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(folder) / name
            if path.is_file():
                found.append(path.relative_to(root).as_posix())
    return tuple(sorted(found))


def _digest(root: Path, files: tuple[str, ...]) -> str:
    total = hashlib.sha256()
    for relative in files:
        path = root / relative
        executable = bool(path.stat().st_mode & stat.S_IXUSR)
        with path.open("rb") as handle:
            content = hashlib.file_digest(handle, "sha256").hexdigest()
        total.update(f"{relative}\0{int(executable)}\0{content}\n".encode())
    return total.hexdigest()
