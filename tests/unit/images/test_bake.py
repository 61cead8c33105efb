"""buildmatrix.images.bake: the bake file of the real matrix (golden), its target shape and cache."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from buildmatrix.cli.images import parse_secret
from buildmatrix.images import (
    ImageOptions,
    bake_definition,
    plan_images,
)
from buildmatrix.images.plan import resolve_frameworks
from buildmatrix.model import Matrix
from tests.support.imagesetup import FIXED


def test_golden_bake_file_of_the_real_matrix(real_matrix: Matrix, golden: Callable[[str, str], None]) -> None:
    options = ImageOptions(
        wheelhouse=FIXED.wheelhouse,
        created=FIXED.created,
        revision=FIXED.revision,
        tag_prefix="registry.example.com/dynamo",
        cache_from="registry.example.com/dynamo/cache",
        cache_to="registry.example.com/dynamo/cache",
    )
    builds = plan_images(real_matrix, real_matrix.releases, resolve_frameworks(real_matrix, ["all"]), options)
    definition = bake_definition(builds, real_matrix.root)
    assert len(definition["target"]) == len(real_matrix.releases) * 3
    golden("images-bake.json", json.dumps(definition, indent=2) + "\n")


def test_bake_target_shape(real_matrix: Matrix, tmp_path: Path) -> None:
    secret = tmp_path / "netrc"
    secret.write_text("machine index login u password p\n")
    options = ImageOptions(
        wheelhouse=FIXED.wheelhouse,
        created=FIXED.created,
        cache_from="reg.example.com/cache",
        cache_to="reg.example.com/cache",
        secrets=(parse_secret(f"id=netrc,src={secret}"),),
        find_links=tmp_path,
    )
    (build,) = plan_images(
        real_matrix, real_matrix.releases[:1], resolve_frameworks(real_matrix, ["vllm"]), options
    )
    target = bake_definition([build], real_matrix.root)["target"][build.name]
    assert target["context"] == "containers"
    assert target["dockerfile"] == "Dockerfile"
    assert target["target"] == "framework-runtime"
    assert target["cache-from"] == [
        "type=registry,ref=reg.example.com/cache:vllm-cuda12-amd64-arm64",
        "type=registry,ref=reg.example.com/cache:vllm-cuda12-amd64",
        "type=registry,ref=reg.example.com/cache:vllm-cuda12-arm64",
    ]
    assert target["cache-to"] == ["type=registry,ref=reg.example.com/cache:vllm-cuda12-amd64-arm64,mode=max"]
    assert target["secret"] == [f"type=file,id=netrc,src={secret}"]
    assert target["contexts"] == {"find-links": str(tmp_path)}
    # A secret never reaches an arg or a label.
    assert not any(str(secret) in value for value in [*target["args"].values(), *target["labels"].values()])


def test_no_cache_to_unless_asked(real_matrix: Matrix) -> None:
    options = ImageOptions(wheelhouse=FIXED.wheelhouse, cache_from="reg.example.com/cache")
    (build,) = plan_images(
        real_matrix, real_matrix.releases[:1], resolve_frameworks(real_matrix, ["vllm"]), options
    )
    assert build.cache_from
    assert not build.cache_to
    assert "cache-to" not in bake_definition([build], real_matrix.root)["target"][build.name]
