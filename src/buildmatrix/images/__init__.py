"""Runtime images of the frameworks: an engine-neutral plan, then buildx or buildah.

``plan_images`` turns the matrix into ``ImageBuild`` records (what `--dry-run
--format json` prints and `verify` checks); an engine (``select_engine``) turns
them into a bake file or buildah commands and ``run_builds`` runs them.
"""

from __future__ import annotations

from buildmatrix.images.bake import BuildxEngine, bake_definition, write_bake_file
from buildmatrix.images.buildah import BuildahEngine
from buildmatrix.images.engine import (
    ENGINES,
    Engine,
    Result,
    Status,
    run_builds,
    run_merges,
    select_engine,
)
from buildmatrix.images.plan import (
    CacheRef,
    ImageBuild,
    ImageOptions,
    MergeStep,
    Secret,
    merge_steps,
    plan_images,
)

__all__ = [
    "ENGINES",
    "BuildahEngine",
    "BuildxEngine",
    "CacheRef",
    "Engine",
    "ImageBuild",
    "ImageOptions",
    "MergeStep",
    "Result",
    "Secret",
    "Status",
    "bake_definition",
    "merge_steps",
    "plan_images",
    "run_builds",
    "run_merges",
    "select_engine",
    "write_bake_file",
]
