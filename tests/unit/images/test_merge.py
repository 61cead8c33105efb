"""buildmatrix.images.merge: per-arch builds merged into one manifest list."""

from __future__ import annotations

from pathlib import Path

from buildmatrix.images import (
    BuildahEngine,
    BuildxEngine,
    ImageOptions,
    merge_steps,
    plan_images,
)
from buildmatrix.images.plan import resolve_frameworks
from buildmatrix.model import Matrix
from tests.support.imagesetup import FIXED, _fields


def test_split_per_arch_and_merge(real_matrix: Matrix) -> None:
    options = ImageOptions(
        wheelhouse=FIXED.wheelhouse,
        tag_prefix="reg.example.com/d",
        cache_from="reg.example.com/c",
        cache_to="reg.example.com/c",
    )
    frameworks = resolve_frameworks(real_matrix, ["vllm"])
    amd64, arm64 = plan_images(
        real_matrix, real_matrix.releases[:1], frameworks, ImageOptions(**{**_fields(options), "split": True})
    )
    assert amd64.platforms == ("linux/amd64",)
    assert arm64.platforms == ("linux/arm64",)
    assert amd64.tags == ("reg.example.com/d/vllm-runtime:main-cuda12-amd64",)
    assert [str(r) for r in arm64.cache_to] == ["reg.example.com/c:vllm-cuda12-arm64"]
    assert [str(r) for r in arm64.cache_from] == ["reg.example.com/c:vllm-cuda12-arm64"]
    assert amd64.args == arm64.args  # the same pins on both arches

    (whole,) = plan_images(real_matrix, real_matrix.releases[:1], frameworks, options)
    (step,) = merge_steps([whole])
    assert step.tag == "reg.example.com/d/vllm-runtime:main-cuda12"
    assert step.sources == (amd64.tags[0], arm64.tags[0])
    buildah = BuildahEngine(real_matrix.root).merge_commands(step)
    assert buildah[0] == ["buildah", "manifest", "create", step.tag]
    assert buildah[-1] == ["buildah", "manifest", "push", "--all", step.tag, f"docker://{step.tag}"]
    buildx = BuildxEngine(real_matrix.root, Path("bake.json")).merge_commands(step)
    assert buildx == [["docker", "buildx", "imagetools", "create", "--tag", step.tag, *step.sources]]
