"""The output folder: published wheels, ``manifest.json``, ``logs/``, ``rejected/``.

Nothing appears half-written. Builds happen in a private work folder inside
the output folder (same file system), and a wheel enters the output only by
a rename (``Path.replace``) after it passed the audit; the manifest is rewritten through a
temporary file and a rename after each publish. An interrupted run leaves
the previous state plus whole wheels, never a partial one; its work folder is
removed on the way out, or by the next run if the process was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from buildmatrix import __version__
from buildmatrix._files import write_text_atomic
from buildmatrix.errors import UsageError

__all__ = ["LOCK", "MANIFEST", "OutputFolder", "manifest_problem", "sha256_of"]

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
LOCK = ".buildmatrix.lock"
_WORK_PREFIX = ".tmp-wheels-"


def manifest_problem(root: Path, entry: object) -> str:
    """Why a manifest entry cannot be trusted, or an empty string.

    The manifest is state a later run acts on (it deletes a replaced wheel), so
    a file name must be a plain ``*.whl`` name of a file directly in ``root``:
    no separators, no ``..``, not absolute, not a link leading out.
    """
    if not isinstance(entry, dict):
        return "an entry is not a JSON object"
    target, filename = entry.get("target"), entry.get("filename")
    if not isinstance(target, str) or not target:
        return f"an entry has no target id: {entry!r:.80}"
    if not isinstance(filename, str):
        return f"entry {target!r} has no file name"
    plain = (
        filename not in ("", ".", "..")
        and not any(c in filename for c in "/\\\0")
        and filename.endswith(".whl")
        and Path(filename).name == filename
    )
    if not plain:
        return f"entry {target!r} names {filename!r}, which is not a plain wheel file name"
    if (root / filename).resolve().parent != root.resolve():
        return f"entry {target!r}: {filename!r} leads out of {root}"
    return ""


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class OutputFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.rejected = root / "rejected"
        self.manifest_path = root / MANIFEST
        self._entries: dict[str, dict[str, Any]] | None = None
        self._run: dict[str, Any] | None = None  # this run's record, once it is written

    # -- work folder -----------------------------------------------------------------------

    @contextlib.contextmanager
    def work_folder(self) -> Iterator[Path]:
        """A fresh private folder for one run, removed however the run ends."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._remove_abandoned_work()
        # Absolute: cibuildwheel runs in the staged source, not in our working directory.
        work = (self.root / f"{_WORK_PREFIX}{os.getpid()}-{secrets.token_hex(4)}").resolve()
        work.mkdir()
        try:
            yield work
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _remove_abandoned_work(self) -> None:
        """Work folders of runs that were killed (their process is gone)."""
        for folder in self.root.glob(f"{_WORK_PREFIX}*"):
            pid_text = folder.name.removeprefix(_WORK_PREFIX).split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def locked(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the folder's lock: runs on one folder take turns, and each reads the
        manifest only once it holds the lock, so no run's entries are lost."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._refuse_links()
        with (self.root / LOCK).open("a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                if on_wait is not None:
                    on_wait(f"waiting for the run holding {self.root / LOCK} ({holder}) to finish")
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            self._entries = None  # re-read: the previous holder may have changed it
            try:
                self.entries  # noqa: B018 - a poisoned manifest stops the run before any work
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _refuse_links(self) -> None:
        """The folder's own files and subfolders are written to: a symlink among them
        (planted state) would redirect those writes outside the folder."""
        for path in (
            self.root / LOCK,
            self.manifest_path,
            self.logs,
            self.rejected,
            self.rejected / "withdrawn",
        ):
            if path.is_symlink():
                msg = (
                    f"{path} is a symbolic link: the output folder's own files must be inside "
                    "it (nothing outside --out is written); remove the link"
                )
                raise UsageError(msg)

    def log_path(self, slug: str) -> Path:
        return self.logs / f"{slug}.log"

    # -- manifest --------------------------------------------------------------------------

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        """Manifest entries by target id (an unreadable manifest counts as empty; an
        entry naming a file outside the folder is bad input, exit 2)."""
        if self._entries is None:
            entries: list[Any] = []
            try:
                data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
                if data.get("schema") == MANIFEST_SCHEMA and isinstance(data["wheels"], list):
                    entries = data["wheels"]
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
            for entry in entries:
                problem = manifest_problem(self.root, entry)
                if problem:
                    msg = (
                        f"{self.manifest_path}: {problem}; refusing to act on it (nothing "
                        "outside the output folder is touched): fix or remove the manifest"
                    )
                    raise UsageError(msg)
            self._entries = {entry["target"]: entry for entry in entries}
        return self._entries

    def unchanged(self, target_id: str, input_hash: str) -> Mapping[str, Any] | None:
        """The manifest entry when its inputs match and its wheel is still in the folder."""
        entry = self.entries.get(target_id)
        if entry is None or entry.get("input_hash") != input_hash:
            return None
        wheel = self.root / str(entry.get("filename", ""))
        try:
            if wheel.is_file() and wheel.stat().st_size == entry.get("size"):
                return entry
        except OSError:
            return None
        return None

    def publish(self, wheel: Path, entry: dict[str, Any]) -> Path:
        """Move an audited wheel into the folder and record it in the manifest."""
        destination = self.root / wheel.name
        wheel.replace(destination)
        previous = self.entries.get(entry["target"])
        self.entries[entry["target"]] = entry
        if previous is not None and previous.get("filename") != wheel.name:
            still_used = {e.get("filename") for e in self.entries.values()}
            if previous.get("filename") not in still_used:
                (self.root / str(previous["filename"])).unlink(missing_ok=True)
        self._write_manifest()
        return destination

    def withdraw(self, target_id: str, reason: str) -> Path | None:
        """Take a target's published wheel out of the folder (a rebuild failed: it is
        stale) into ``rejected/withdrawn/``, with the reason beside it."""
        entry = self.entries.pop(target_id, None)
        if entry is None:
            return None
        name = str(entry["filename"])
        destination = self.rejected / "withdrawn" / name
        if name not in {e.get("filename") for e in self.entries.values()} and (self.root / name).is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            record = {"target": target_id, "wheel": name, "reason": reason, "entry": entry}
            write_text_atomic(
                destination.with_name(name + ".withdrawn.json"),
                json.dumps(record, indent=2, sort_keys=True) + "\n",
            )
            (self.root / name).replace(destination)
        self._write_manifest()
        return destination

    def record_run(self, run: Mapping[str, Any]) -> None:
        """Write the release record of the run that just ended into the manifest."""
        self._run = dict(run)
        self._write_manifest()

    def reject(self, wheel: Path, report: Mapping[str, Any]) -> Path:
        """Keep a wheel that failed the audit aside, with its report beside it."""
        self.rejected.mkdir(exist_ok=True)
        destination = self.rejected / wheel.name
        write_text_atomic(
            destination.with_name(wheel.name + ".audit.json"),
            json.dumps(report, indent=2, sort_keys=True) + "\n",
        )
        wheel.replace(destination)
        return destination

    def _write_manifest(self) -> None:
        data = {
            "schema": MANIFEST_SCHEMA,
            "generator": f"buildmatrix {__version__}",
            "wheels": [self.entries[key] for key in sorted(self.entries)],
        }
        if self._run is not None:
            data["run"] = self._run
        write_text_atomic(self.manifest_path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
