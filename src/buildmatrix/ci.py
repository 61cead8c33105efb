"""CI job matrices: the plan as GitHub Actions ``strategy.matrix`` objects.

GitHub Actions caps one job matrix at 256 jobs, so a larger plan is split into
shards that the workflow runs as separate jobs.

``pipeline_outputs`` turns one plan into every matrix the release workflow
(.github/workflows/release.yml) fans out from: one wheels job per release,
package and arch (cibuildwheel builds all of that package's Pythons in it),
one image job per release, framework and arch on a native runner, and one
merge job per release and framework that joins the per-arch images into a
manifest list. Each fan-out is sharded at 256 jobs: the workflow runs one reusable-workflow call
per shard. ``OUTPUTS`` names what the plan job writes to ``$GITHUB_OUTPUT``; the
workflow tests check the workflows read only those.

Runners come from matrix.toml's ``[runners.<kind>]`` tables (``RUNNERS`` when a
matrix names none), so larger or self-hosted runners are named in one place.
``publishing`` decides whether a run may publish (manifest lists, PyPI): a tag
push of the release the tag names, or a protected ref; never a manual run that
builds some other release than its ref names.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildmatrix.errors import UsageError
from buildmatrix.expand import ImageTarget, Plan, Target, WheelTarget
from buildmatrix.model import Matrix, Release, ReleaseStatus

__all__ = [
    "MAX_JOBS",
    "MAX_OUTPUT_BYTES",
    "OUTPUTS",
    "RUNNERS",
    "Publishing",
    "github_matrix",
    "image_jobs",
    "manifest_jobs",
    "pipeline_outputs",
    "publishing",
    "release_for_ref",
    "runner_labels",
    "shard",
    "shard_count",
    "wheel_jobs",
    "write_github_output",
]

MAX_JOBS = 256
# GitHub keeps at most 1 MB of outputs per job; over that the plan job fails obscurely.
MAX_OUTPUT_BYTES = 1_000_000

# Native runners per arch: arm64 wheels and images build on arm64 hosts, never emulated.
# The default when matrix.toml has no [runners.<kind>] entry for an arch.
RUNNERS: Mapping[str, str] = {"x86_64": "ubuntu-24.04", "aarch64": "ubuntu-24.04-arm"}
Runners = Mapping[str, Mapping[str, tuple[str, ...]]]  # kind -> arch -> labels (Matrix.runners)

# What the plan job writes to $GITHUB_OUTPUT (and the workflow declares as its outputs).
OUTPUTS = (
    "releases",  # JSON list of the planned release names
    "wheels",  # JSON list of shards, each {"include": [wheel job, ...]} of at most 256 jobs
    "wheel_shards",  # JSON list of shard indexes, the caller job's matrix ([] when no wheels)
    "images",  # like wheels, image jobs (one per release, framework and arch)
    "image_shards",
    "manifests",  # like wheels, merge jobs (one per release and framework)
    "manifest_shards",
    "publish_images",  # "true" when this run may publish manifest lists (see publishing)
    "publish_pypi",  # "true" when this run may upload to PyPI (tag runs only)
)


def shard_count(jobs: int) -> int:
    return max(1, math.ceil(jobs / MAX_JOBS))


def github_matrix(targets: Sequence[Target], *, shard: int | None = None) -> dict[str, Any]:
    """``{"include": [...]}``; over 256 targets, ``shard`` picks one slice of at most 256."""
    shards = shard_count(len(targets))
    if shard is None:
        if shards > 1:
            msg = (
                f"the plan has {len(targets)} jobs, more than GitHub's {MAX_JOBS} per matrix: "
                f"pass --shard N with N from 0 to {shards - 1}"
            )
            raise UsageError(msg)
        shard = 0
    if not 0 <= shard < shards:
        msg = f"--shard {shard} is out of range: the plan has {shards} shard(s), 0 to {shards - 1}"
        raise UsageError(msg)
    chosen = targets[shard * MAX_JOBS : (shard + 1) * MAX_JOBS]
    return {"include": [_job(target) for target in chosen]}


def _job(target: Target) -> dict[str, Any]:
    job = target.to_json()
    # Runners per arch: native arm64 runners, never emulation, for real builds.
    job["runner"] = RUNNERS[target.arch.name]
    if "pins" in job:
        job["pins"] = " ".join(f"{name}=={version}" for name, version in job["pins"].items())
    return job


def shard(jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Jobs as ``{"include": [...]}`` matrices of at most ``MAX_JOBS`` each ([] for no jobs)."""
    return [{"include": list(jobs[start : start + MAX_JOBS])} for start in range(0, len(jobs), MAX_JOBS)]


def runner_labels(runners: Runners, kind: str, arch: str) -> str | list[str]:
    """What ``runs-on`` gets for a job: one label, or every label of a self-hosted runner."""
    labels = runners.get(kind, {}).get(arch)
    if labels is None:
        if arch not in RUNNERS:
            msg = f"no runner for {kind} jobs on {arch}: name one in matrix.toml [runners.{kind}] {arch}"
            raise UsageError(msg)
        return RUNNERS[arch]
    return labels[0] if len(labels) == 1 else list(labels)


def wheel_jobs(plan: Plan, runners: Runners | None = None) -> list[dict[str, Any]]:
    """One job per release, package and arch; it builds every Python the plan has for them."""
    groups: dict[tuple[str, str, str], list[WheelTarget]] = {}
    for target in plan.wheels():
        key = (target.release.name, str(target.package.name), target.arch.name)
        groups.setdefault(key, []).append(target)
    jobs = []
    for (release, package, arch), targets in groups.items():
        first = targets[0]
        jobs.append(
            {
                "id": f"wheels:{package}:{release}:{arch}",
                "release": release,
                "version": str(first.release.version),
                "package": package,
                "arch": arch,
                "platform": first.arch.platform,
                "runner": runner_labels(runners or {}, "wheel", arch),
                "pythons": " ".join(t.python for t in targets),
                "targets": " ".join(t.id for t in targets),
                "artifact": f"wheels-{release}-{package}-{arch}",
            }
        )
    return jobs


def _cuda_tag(target: ImageTarget) -> str:
    return f"{target.release.name}-cuda{target.cuda.major}"


def image_jobs(plan: Plan, runners: Runners | None = None) -> list[dict[str, Any]]:
    """One job per release, framework and arch (a single-platform build on a native runner)."""
    jobs = []
    for target in plan.images():
        docker_arch = target.arch.docker_arch
        jobs.append(
            {
                "id": target.id,
                "release": target.release.name,
                "version": str(target.release.version),
                "framework": target.framework.name,
                "image": target.image.name,
                "arch": target.arch.name,
                "platform": target.arch.platform,
                "docker_arch": docker_arch,
                "runner": runner_labels(runners or {}, "image", target.arch.name),
                "cuda": str(target.cuda),
                "tag": _cuda_tag(target),
                # `buildmatrix images --split` tags a one-platform build `<tag>-<arch>`.
                "arch_tag": f"{_cuda_tag(target)}-{docker_arch}",
                "pins": " ".join(f"{name}=={version}" for name, version in target.pins.items()),
                "digest_artifact": f"digest-{target.release.name}-{target.framework.name}-{docker_arch}",
                # The release's own wheels (from the wheels jobs) go into the image.
                "wheels_pattern": f"wheels-{target.release.name}-*",
            }
        )
    return jobs


def manifest_jobs(plan: Plan) -> list[dict[str, Any]]:
    """One job per release and framework: the per-arch images joined into one manifest list."""
    groups: dict[tuple[str, str], list[ImageTarget]] = {}
    for target in plan.images():
        groups.setdefault((target.release.name, target.framework.name), []).append(target)
    jobs = []
    for (release, framework), targets in groups.items():
        first = targets[0]
        jobs.append(
            {
                "id": f"manifest:{framework}:{release}",
                "release": release,
                "framework": framework,
                "image": first.image.name,
                "tag": _cuda_tag(first),
                "platforms": " ".join(t.arch.platform for t in targets),
                "digest_pattern": f"digest-{release}-{framework}-*",
                "digests": len(targets),
            }
        )
    return jobs


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def pipeline_outputs(
    plan: Plan,
    releases: Sequence[Release],
    *,
    runners: Runners | None = None,
    publish: Publishing | None = None,
) -> dict[str, str]:
    """Every ``OUTPUTS`` value as the string the plan job writes (compact JSON or a flag)."""
    wheels = shard(wheel_jobs(plan, runners))
    images = shard(image_jobs(plan, runners))
    manifests = shard(manifest_jobs(plan))
    outputs = {
        "releases": _compact([r.name for r in releases]),
        "wheels": _compact(wheels),
        "wheel_shards": _compact(list(range(len(wheels)))),
        "images": _compact(images),
        "image_shards": _compact(list(range(len(images)))),
        "manifests": _compact(manifests),
        "manifest_shards": _compact(list(range(len(manifests)))),
        "publish_images": _flag(publish is not None and publish.images),
        "publish_pypi": _flag(publish is not None and publish.pypi),
    }
    assert tuple(outputs) == OUTPUTS
    size = sum(len(name) + len(value.encode()) for name, value in outputs.items())
    if size > MAX_OUTPUT_BYTES:
        msg = (
            f"the job matrices take {size} bytes, over GitHub's {MAX_OUTPUT_BYTES} bytes of outputs "
            "per job: plan fewer releases per run (--release)"
        )
        raise UsageError(msg)
    return outputs


def release_for_ref(matrix: Matrix, ref: str) -> Release:
    """The release a Git ref builds: a tag names its release; a branch builds the release of
    that name, else the development release (top of tree)."""
    tag = ref.removeprefix("refs/tags/")
    if tag != ref:
        release = matrix.find_release(tag)
        if release is None:
            known = ", ".join(r.name for r in matrix.releases)
            msg = f"tag {tag!r} has no [[release]] in {matrix.path} (releases: {known})"
            raise UsageError(msg)
        return release
    branch = ref.removeprefix("refs/heads/")
    named = matrix.find_release(branch)
    if named is not None:
        return named
    development = [r for r in matrix.releases if r.status is ReleaseStatus.DEVELOPMENT]
    if not development:
        msg = f"ref {ref!r} names no release and {matrix.path} has no development release"
        raise UsageError(msg)
    return development[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Publishing:
    images: bool  # merge the per-arch images into the published manifest lists
    pypi: bool  # upload the wheels and sdists to PyPI
    reason: str  # why (or why not), for the run's summary


def publishing(
    matrix: Matrix, releases: Sequence[Release], ref: str | None, *, event: str, protected: bool
) -> Publishing:
    """Whether this run may publish what it builds.

    On a tag the planned release must be the tag's own (else a UsageError: a manual
    run on tag v0.7.1 must never build `main` and upload it as if it were v0.7.1).
    A tag push or a run on a protected tag publishes everything; a protected branch
    publishes the images of the development release it names (never a released
    version's tags, which only its tag publishes) and nothing to PyPI; anything
    else (an unprotected branch, a manual run of another release) publishes nothing.
    """
    if ref is None:
        return Publishing(images=False, pypi=False, reason="no Git ref given (--ref): nothing is published")
    names = [r.name for r in releases]
    if ref.startswith("refs/tags/"):
        expected = release_for_ref(matrix, ref)
        if names != [expected.name]:
            msg = (
                f"{ref} builds release {expected.name!r}, but the plan is for "
                f"{', '.join(repr(n) for n in names) or 'no release'}: "
                f"on a tag, plan its own release (--release {expected.name}) or none"
            )
            raise UsageError(msg)
        if event == "push" or protected:
            return Publishing(images=True, pypi=True, reason=f"{ref} is pushed: release {expected.name}")
        reason = f"{ref} is not protected and this is a {event or 'manual'} run"
        return Publishing(images=False, pypi=False, reason=reason)
    if not protected:
        return Publishing(images=False, pypi=False, reason=f"{ref} is not a protected ref")
    named = release_for_ref(matrix, ref)
    if names != [named.name] or named.status is not ReleaseStatus.DEVELOPMENT:
        return Publishing(
            images=False,
            pypi=False,
            reason=f"{ref} publishes only its development release, not {', '.join(names)}",
        )
    return Publishing(images=True, pypi=False, reason=f"{ref} is protected: images of {named.name}")


def write_github_output(path: Path, outputs: Mapping[str, str]) -> None:
    """Append ``outputs`` to a ``$GITHUB_OUTPUT`` file; multi-line values use a heredoc."""
    lines = []
    for name, value in outputs.items():
        if "\n" in value:
            delimiter = f"EOF_{uuid.uuid4().hex}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))
