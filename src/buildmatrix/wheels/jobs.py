"""The unit of work of the wheels job, shared by both backends.

A ``Job`` is one build that yields the wheels of one or more targets: a local
build yields one wheel; one cibuildwheel call yields the wheels of one package
and arch. Its ``commands`` are exactly what runs (``--dry-run`` prints them);
paths inside the job's work folder are written relative to ``WORK`` until the
run creates it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildmatrix._call import format_command
from buildmatrix.expand import WheelTarget
from buildmatrix.model import Release, WheelPackage

__all__ = ["WHEEL_PLACEHOLDER", "Command", "Job", "Unbuildable"]

# In a command's arguments: the one wheel the previous command left in `wheel_from`.
WHEEL_PLACEHOLDER = "{wheel}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)  # added to the environment
    cwd: Path | None = None
    wheel_from: Path | None = None  # the folder WHEEL_PLACEHOLDER is taken from
    path_prepend: tuple[str, ...] = ()  # folders put in front of $PATH

    def resolve(self, wheel: Path | None) -> list[str]:
        if wheel is None:
            return list(self.argv)
        return [arg.replace(WHEEL_PLACEHOLDER, str(wheel)) for arg in self.argv]

    def environment(self) -> dict[str, str]:
        """The variables to add to the current environment when it runs."""
        env = dict(self.env)
        if self.path_prepend:
            env["PATH"] = os.pathsep.join([*self.path_prepend, os.environ.get("PATH", "")])
        return env

    def describe(self) -> list[str]:
        """How ``--dry-run`` shows it: folder, then one variable per line, then the command."""
        lines = []
        if self.cwd is not None:
            lines.append(f"cd {format_command([str(self.cwd)])}")
        for key, value in self.env.items():
            lines.append(f"export {key}={format_command([value])}")
        if self.path_prepend:
            folders = format_command([os.pathsep.join(self.path_prepend)])
            lines.append(f"export PATH={folders}{os.pathsep}$PATH")
        lines.append(" ".join(self._shown(arg) for arg in self.argv))
        return lines

    def _shown(self, arg: str) -> str:
        """Shell-quoted; the wheel the previous command left is a glob of its folder (it holds one)."""
        if WHEEL_PLACEHOLDER in arg and self.wheel_from is not None:
            before, _, after = arg.partition(WHEEL_PLACEHOLDER)
            glob = format_command([f"{before}{self.wheel_from}"]) + "/*.whl"
            return glob + (format_command([after]) if after else "")
        return format_command([arg])

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": list(self.argv),
            "env": dict(self.env),
            "path_prepend": list(self.path_prepend),
            "cwd": None if self.cwd is None else os.fspath(self.cwd),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    slug: str  # names its work folder and its log: "ai-dynamo-runtime-main-x86_64"
    backend: str  # "local" | "cibuildwheel"
    package: WheelPackage
    release: Release
    targets: tuple[WheelTarget, ...]
    source_dir: Path  # where the source is staged (the commands build from here)
    output_dir: Path  # where the finished (repaired) wheels are left
    commands: tuple[Command, ...]
    # What shapes the wheel besides the source and the matrix: tool versions,
    # images, interpreter. Part of the incremental key and of the manifest.
    tools: Mapping[str, str]
    note: str = ""  # e.g. "aarch64 under QEMU emulation"
    # Run after ``commands``: the package's tests against the finished wheel in a clean
    # venv (the local backend; cibuildwheel runs them itself).
    tests: tuple[Command, ...] = ()


@dataclass(frozen=True, slots=True)
class Unbuildable:
    """A target this host cannot build with this backend, and what would build it."""

    target: WheelTarget
    reason: str
