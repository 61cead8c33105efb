"""Choosing an engine and running the plan: progress, one log per image, results as data."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from buildmatrix._call import call, which
from buildmatrix.errors import BuildMatrixError, CommandFailedError, ToolMissingError, UsageError
from buildmatrix.images.bake import BuildxEngine
from buildmatrix.images.buildah import BuildahEngine
from buildmatrix.images.plan import ImageBuild, MergeStep, merge_name
from buildmatrix.progress import SILENT, Reporter

__all__ = ["ENGINES", "Engine", "Result", "Status", "run_builds", "run_merges", "select_engine"]

ENGINES = ("auto", "buildx", "buildah")


class Engine(Protocol):
    name: str

    def prepare(self, builds: Sequence[ImageBuild]) -> None: ...

    def build_commands(self, build: ImageBuild, *, push: bool) -> list[list[str]]: ...

    def merge_commands(self, step: MergeStep) -> list[list[str]]: ...

    def run(self, command: list[str], log: IO[str]) -> None: ...

    def pushed_digest(self, name: str) -> str: ...


class Status(enum.StrEnum):
    BUILT = "built"
    PUSHED = "pushed"
    MERGED = "merged"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Result:
    name: str  # the build's (or merge's) name
    tags: tuple[str, ...]
    platforms: tuple[str, ...]
    status: Status
    seconds: float
    log: Path
    error: str = ""
    digest: str = ""  # what was pushed: the manifest list's digest, when the engine reports it

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "tags": list(self.tags),
            "platforms": list(self.platforms),
            "status": str(self.status),
            "seconds": round(self.seconds, 1),
            "log": str(self.log),
            "error": self.error,
            "digest": self.digest,
        }


def _answers(*command: str) -> bool:
    try:
        call(*command, capture_stdout=True, echo=False)
    except BuildMatrixError:
        return False
    return True


def buildx_plugin_available() -> bool:
    """The buildx plugin is installed (enough for `bake --print`)."""
    return _answers("docker", "buildx", "version")


def buildx_available() -> bool:
    """A Docker daemon answers and has the buildx plugin (enough to build)."""
    return buildx_plugin_available() and _answers("docker", "info", "--format", "{{.ServerVersion}}")


def buildah_available() -> bool:
    return _answers("buildah", "version")


def select_engine(
    choice: str, root: Path, out_dir: Path, *, dry_run: bool = False, tls_verify: bool = True
) -> Engine:
    """``auto``: buildx when a daemon with buildx answers, else buildah, else exit 2.

    A dry run needs no tool: ``auto`` then falls back to showing the buildx plan.
    """
    if choice not in ENGINES:
        msg = f"unknown engine {choice!r}; known: {', '.join(ENGINES)}"
        raise UsageError(msg)
    if choice == "auto":
        if buildx_available():
            choice = "buildx"
        elif buildah_available():
            choice = "buildah"
        elif dry_run:
            choice = "buildx"
        else:
            msg = (
                "no image builder found: install Docker with the buildx plugin (and start the "
                "daemon), or buildah (`apt-get install buildah`), or pass --engine"
            )
            raise ToolMissingError(msg)
    elif not dry_run and choice == "buildx" and not buildx_available():
        msg = (
            "--engine buildx needs Docker with the buildx plugin and a daemon that answers "
            "(`docker buildx version`, `docker info`); or use --engine buildah"
        )
        raise ToolMissingError(msg)
    elif not dry_run and choice == "buildah":
        which("buildah")  # exit 2 with the install hint, before any build starts
    if choice == "buildx":
        return BuildxEngine(root, out_dir / "docker-bake.json")
    return BuildahEngine(root, out_dir / "digests", tls_verify=tls_verify)


def _run_steps(
    engine: Engine,
    name: str,
    commands: list[list[str]],
    log_path: Path,
) -> tuple[bool, str, float]:
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        try:
            for command in commands:
                engine.run(command, log)
        except BuildMatrixError as error:
            print(f"buildmatrix: {name} failed: {error.message}", file=log)
            return False, _short(error), time.monotonic() - started
    return True, "", time.monotonic() - started


def _short(error: BuildMatrixError) -> str:
    """One line for the summary: which tool failed, and the last thing it said."""
    if isinstance(error, CommandFailedError):
        said = [line.strip() for line in error.stderr.splitlines() if line.strip()]
        head = f"{' '.join(error.command[:2])} exited {error.returncode}"
        return f"{head}: {said[-1]}" if said else head
    return error.message.splitlines()[0]


def run_builds(
    engine: Engine,
    builds: Sequence[ImageBuild],
    *,
    push: bool,
    log_dir: Path,
    reporter: Reporter = SILENT,
) -> list[Result]:
    """Build every image; a failure is recorded and the others still run."""
    engine.prepare(builds)
    results: list[Result] = []
    with reporter.steps("images", len(builds)) as tracker:
        for build in builds:
            log_path = log_dir / f"{build.name}.log"
            tracker.note(f"building {build.name} ({', '.join(build.platforms)}) -> {log_path}")
            ok, error, seconds = _run_steps(
                engine, build.name, engine.build_commands(build, push=push), log_path
            )
            status = (Status.PUSHED if push else Status.BUILT) if ok else Status.FAILED
            digest = engine.pushed_digest(build.name) if ok and push else ""
            results.append(
                Result(build.name, build.tags, build.platforms, status, seconds, log_path, error, digest)
            )
            tracker.advance(f"{build.name}: {status}")
    return results


def run_merges(
    engine: Engine, steps: Sequence[MergeStep], *, log_dir: Path, reporter: Reporter = SILENT
) -> list[Result]:
    results: list[Result] = []
    with reporter.steps("manifest lists", len(steps)) as tracker:
        for step in steps:
            name = merge_name(step)
            log_path = log_dir / f"{name}.log"
            ok, error, seconds = _run_steps(engine, name, engine.merge_commands(step), log_path)
            status = Status.MERGED if ok else Status.FAILED
            digest = engine.pushed_digest(name) if ok else ""
            results.append(
                Result(step.tag, (step.tag,), step.platforms, status, seconds, log_path, error, digest)
            )
            tracker.advance(f"{step.tag}: {status}")
    return results
