"""The ``buildx`` engine: a docker-bake.json of the plan, run with ``docker buildx bake``.

The bake file has one target per image build and groups per framework and per
release (plus ``default``), so `docker buildx bake -f docker-bake.json vllm`
also works by hand. Paths are relative to the matrix's folder, where bake runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from buildmatrix._call import call
from buildmatrix._files import write_text_atomic
from buildmatrix.images.plan import ImageBuild, MergeStep

__all__ = ["BuildxEngine", "bake_definition", "write_bake_file"]


def _path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _target(build: ImageBuild, root: Path) -> dict[str, Any]:
    target: dict[str, Any] = {
        "context": _path(build.context, root),
        "dockerfile": Path(os.path.relpath(build.dockerfile, build.context)).as_posix(),
        "target": build.target,
        "platforms": list(build.platforms),
        "args": dict(build.args),
        "labels": dict(build.labels),
        "tags": list(build.tags),
    }
    if build.contexts:
        target["contexts"] = {name: _path(path, root) for name, path in build.contexts.items()}
    if build.cache_from:
        target["cache-from"] = [f"type=registry,ref={ref}" for ref in build.cache_from]
    if build.cache_to:
        target["cache-to"] = [f"type=registry,ref={ref},mode=max" for ref in build.cache_to]
    if build.secrets:
        target["secret"] = [f"type=file,id={s.id},src={s.src}" for s in build.secrets]
    return target


def bake_definition(builds: Sequence[ImageBuild], root: Path) -> dict[str, Any]:
    """The bake file as a dict: groups (default, per framework, per release) and targets."""
    frameworks: dict[str, list[str]] = {}
    releases: dict[str, list[str]] = {}
    for build in builds:
        frameworks.setdefault(build.framework, []).append(build.name)
        releases.setdefault(f"release-{build.release.replace('.', '_')}", []).append(build.name)
    groups = {"default": [build.name for build in builds], **frameworks, **releases}
    return {
        "group": {name: {"targets": targets} for name, targets in groups.items()},
        "target": {build.name: _target(build, root) for build in builds},
    }


def write_bake_file(builds: Sequence[ImageBuild], root: Path, path: Path) -> Path:
    """Write docker-bake.json atomically (temp file + rename)."""
    write_text_atomic(path, json.dumps(bake_definition(builds, root), indent=2) + "\n")
    return path


class BuildxEngine:
    """``docker buildx bake`` per target, so each image has its own log and status."""

    name = "buildx"

    def __init__(self, root: Path, bake_file: Path) -> None:
        self.root = root
        self.bake_file = bake_file

    def prepare(self, builds: Sequence[ImageBuild]) -> None:
        write_bake_file(builds, self.root, self.bake_file)

    def build_commands(self, build: ImageBuild, *, push: bool) -> list[list[str]]:
        command = ["docker", "buildx", "bake", "--file", str(self.bake_file), "--progress", "plain"]
        if push:
            command.append("--push")
        elif len(build.platforms) == 1:
            # A single-platform image can go to the local image store.
            command.append("--load")
        return [[*command, build.name]]

    def merge_commands(self, step: MergeStep) -> list[list[str]]:
        return [["docker", "buildx", "imagetools", "create", "--tag", step.tag, *step.sources]]

    def print_definition(self) -> str:
        """``docker buildx bake --print``: the definition as buildx resolves it."""
        return call(
            "docker",
            "buildx",
            "bake",
            "--file",
            str(self.bake_file),
            "--print",
            capture_stdout=True,
            cwd=self.root,
        )

    def run(self, command: list[str], log: IO[str]) -> None:
        call(*command, cwd=self.root, log=log)

    def pushed_digest(self, name: str) -> str:
        """Not recorded for buildx (its --metadata-file would hold it)."""
        return ""
