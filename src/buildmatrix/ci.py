"""CI job matrices: the plan as GitHub Actions ``strategy.matrix`` objects.

GitHub Actions caps one job matrix at 256 jobs, so a larger plan is split into
shards that the workflow runs as separate jobs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from buildmatrix.errors import UsageError
from buildmatrix.expand import Target

__all__ = ["MAX_JOBS", "github_matrix", "shard_count"]

MAX_JOBS = 256


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
    job["runner"] = "ubuntu-24.04-arm" if target.arch.name == "aarch64" else "ubuntu-24.04"
    if "pins" in job:
        job["pins"] = " ".join(f"{name}=={version}" for name, version in job["pins"].items())
    return job
