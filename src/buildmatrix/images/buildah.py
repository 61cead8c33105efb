"""The ``buildah`` engine: daemonless builds for hosts and CI runners without Docker.

Each image is built into a manifest list named after its tag (``buildah build
--platform ... --manifest``), which `buildah manifest push --all` publishes with
every platform. The storage driver and isolation come from buildah's own
configuration or environment (``STORAGE_DRIVER``, ``BUILDAH_ISOLATION``), as on
any buildah host.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from buildmatrix._call import call
from buildmatrix.errors import CommandFailedError
from buildmatrix.images.plan import ImageBuild, MergeStep

__all__ = ["BuildahEngine"]


class BuildahEngine:
    name = "buildah"

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self, builds: Sequence[ImageBuild]) -> None:
        """Nothing to write: buildah takes everything on its command line."""

    def build_commands(self, build: ImageBuild, *, push: bool) -> list[list[str]]:
        manifest = build.tags[0]
        command = [
            "buildah",
            "build",
            "--file",
            str(build.dockerfile),
            "--target",
            build.target,
            "--platform",
            ",".join(build.platforms),
            "--manifest",
            manifest,
        ]
        for name, value in build.args.items():
            command += ["--build-arg", f"{name}={value}"]
        for name, value in build.labels.items():
            command += ["--label", f"{name}={value}"]
        for name, path in build.contexts.items():
            command += ["--build-context", f"{name}={path}"]
        for secret in build.secrets:
            command += ["--secret", f"id={secret.id},src={secret.src}"]
        if build.cache_from or build.cache_to:
            # buildah's registry cache is a repository of layer images; it
            # needs --layers and tags the cache entries itself.
            command.append("--layers")
            for ref in build.cache_from:
                command += ["--cache-from", ref.repository]
            for ref in build.cache_to:
                command += ["--cache-to", ref.repository]
        command.append(str(build.context))
        commands = [command]
        for tag in build.tags:
            if push:
                commands.append(["buildah", "manifest", "push", "--all", manifest, f"docker://{tag}"])
        return commands

    def merge_commands(self, step: MergeStep) -> list[list[str]]:
        commands = [["buildah", "manifest", "create", step.tag]]
        commands += [
            ["buildah", "manifest", "add", step.tag, f"docker://{source}"] for source in step.sources
        ]
        commands.append(["buildah", "manifest", "push", "--all", step.tag, f"docker://{step.tag}"])
        return commands

    def run(self, command: list[str], log: IO[str]) -> None:
        if command[1] == "build":
            self._drop_stale_list(command[command.index("--manifest") + 1], log)
        elif command[1:3] == ["manifest", "create"]:
            self._drop_stale_list(command[3], log)
        call(*command, cwd=self.root, log=log)

    @staticmethod
    def _drop_stale_list(manifest: str, log: IO[str]) -> None:
        """`--manifest` adds to an existing list: remove a previous run's list first."""
        try:
            call("buildah", "manifest", "exists", manifest, log=log, echo=False)
        except CommandFailedError:
            return
        call("buildah", "manifest", "rm", manifest, log=log)
