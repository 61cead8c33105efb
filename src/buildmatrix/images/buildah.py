"""The ``buildah`` engine: daemonless builds for hosts and CI runners without Docker.

Each image is built into a manifest list named after its tag (``buildah build
--platform ... --manifest``), which `buildah manifest push --all` publishes with
every platform, writing the list's digest to ``<digest dir>/<name>.digest``.
A merge joins per-arch images into one list by digest (`buildah manifest add
--all REPO@DIGEST`, every instance of each per-arch list) and pushes it the same
way. A registry on localhost or 127.0.0.0/8 is pushed to over plain HTTP, as
``verify`` reads it. The storage driver and isolation come from buildah's own
configuration or environment (``STORAGE_DRIVER``, ``BUILDAH_ISOLATION``), as on
any buildah host.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from buildmatrix._call import call
from buildmatrix.errors import CommandFailedError
from buildmatrix.images.plan import ImageBuild, MergeStep, merge_name

__all__ = ["BuildahEngine"]


class BuildahEngine:
    name = "buildah"

    def __init__(self, root: Path, digest_dir: Path | None = None, *, tls_verify: bool = True) -> None:
        self.root = root
        self.digest_dir = digest_dir  # where pushes write the pushed list's digest
        self.tls_verify = tls_verify

    def _tls(self, reference: str) -> list[str]:
        """``--tls-verify=false`` for a local registry (plain HTTP) or when asked."""
        from buildmatrix.layers.registry import is_local_host

        host = reference.removeprefix("docker://").split("/", 1)[0]
        return [] if self.tls_verify and not is_local_host(host) else ["--tls-verify=false"]

    def _push(self, manifest: str, destination: str, name: str) -> list[str]:
        command = ["buildah", "manifest", "push", "--all", *self._tls(destination)]
        if self.digest_dir is not None:
            command += ["--digestfile", str(self.digest_dir / f"{name}.digest")]
        return [*command, manifest, f"docker://{destination}"]

    def pushed_digest(self, name: str) -> str:
        """The digest the last push of ``name`` wrote, or "" (no push, no digest dir)."""
        if self.digest_dir is None:
            return ""
        path = self.digest_dir / f"{name}.digest"
        return path.read_text().strip() if path.is_file() else ""

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
                commands.append(self._push(manifest, tag, build.name))
        return commands

    def merge_commands(self, step: MergeStep) -> list[list[str]]:
        commands = [["buildah", "manifest", "create", step.tag]]
        # --all: a per-arch source is itself a (one-platform) list; take its instances,
        # not only the one that matches this host's platform.
        commands += [
            ["buildah", "manifest", "add", "--all", *self._tls(source), step.tag, f"docker://{source}"]
            for source in step.sources
        ]
        commands.append(self._push(step.tag, step.tag, merge_name(step)))
        return commands

    def run(self, command: list[str], log: IO[str]) -> None:
        if "--digestfile" in command:
            # A failed push must never report the digest an earlier push wrote.
            digest_file = Path(command[command.index("--digestfile") + 1])
            digest_file.parent.mkdir(parents=True, exist_ok=True)
            digest_file.unlink(missing_ok=True)
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
