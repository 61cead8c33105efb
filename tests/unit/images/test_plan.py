"""buildmatrix.images.plan: every pin of a release in the plan, and toolkit wheels from the wheelhouse."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from buildmatrix.images import (
    ImageOptions,
    plan_images,
)
from buildmatrix.images.plan import resolve_frameworks
from buildmatrix.model import Matrix
from tests.support.imagesetup import FIXED
from tests.support.wheelfactory import make_wheel


def test_plan_carries_every_pin_of_the_release(real_matrix: Matrix) -> None:
    for release in real_matrix.releases:
        builds = plan_images(real_matrix, [release], resolve_frameworks(real_matrix, ["all"]), FIXED)
        assert [b.framework for b in builds] == ["vllm", "sglang", "trtllm"]
        for build in builds:
            framework = real_matrix.framework(build.framework)
            expected = {
                str(framework.distribution): str(release.pins[framework.distribution]),
                "nixl": str(release.pins[canonicalize_name("nixl")]),
            }
            assert build.pins == expected
            entries = build.args["PINS"].split()
            assert [entry.split("[")[0].split("==")[0] for entry in entries] == list(expected)
            for entry, (name, version) in zip(entries, expected.items(), strict=True):
                assert entry.endswith(f"=={version}")
                assert build.labels[f"org.buildmatrix.pin.{name}"] == version
            assert build.args["FRAMEWORK"] == build.framework
            assert build.target == "framework-runtime"
            cuda = release.cuda[build.framework]
            assert build.args["BUILDMATRIX_CUDA"] == str(cuda)
            assert build.args["BASE_IMAGE"] == real_matrix.cuda_base_images[str(cuda)]
            assert build.labels["org.opencontainers.image.version"] == str(release.version)
            assert build.labels["org.buildmatrix.release"] == release.name
            assert build.labels["org.buildmatrix.framework"] == build.framework
            assert build.tags == (f"localhost/dynamo/{build.image}:{release.name}-cuda{cuda.major}",)
            assert build.platforms == ("linux/amd64", "linux/arm64")


def test_plan_of_v0_7_1(real_matrix: Matrix) -> None:
    release = real_matrix.find_release("0.7.1")
    assert release is not None
    vllm, sglang, trtllm = plan_images(
        real_matrix, [release], resolve_frameworks(real_matrix, ["all"]), FIXED
    )
    assert vllm.args["PINS"] == "vllm[flashinfer]==0.11.0 nixl[cu12]==0.7.1"
    assert sglang.args["PINS"] == "sglang==0.5.3.post4 nixl[cu12]==0.7.1"
    assert trtllm.args["PINS"] == "tensorrt-llm==1.2.0rc3 nixl[cu13]==0.7.1"
    assert trtllm.args["FRAMEWORK"] == "trtllm"
    assert trtllm.tags == ("localhost/dynamo/tensorrtllm-runtime:v0.7.1-cuda13",)
    assert trtllm.args["BASE_IMAGE"] == "nvcr.io/nvidia/cuda:13.0.0-runtime-ubuntu24.04"
    assert vllm.labels["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"
    assert vllm.labels["org.opencontainers.image.source"] == real_matrix.source_url


def test_toolkit_wheels_from_the_wheelhouse(real_matrix: Matrix, tmp_path: Path) -> None:
    make_wheel(tmp_path, "ai-dynamo-runtime", "0.8.0.dev0", tag="cp310-abi3-manylinux_2_28_x86_64")
    make_wheel(tmp_path, "kvbm", "0.7.1", tag="cp312-cp312-manylinux_2_28_x86_64")  # other release
    make_wheel(tmp_path, "unrelated", "0.8.0.dev0")
    options = ImageOptions(wheelhouse=tmp_path)
    (build,) = plan_images(
        real_matrix, real_matrix.releases[:1], resolve_frameworks(real_matrix, ["vllm"]), options
    )
    assert build.args["TOOLKIT_REQUIREMENTS"] == "ai-dynamo-runtime==0.8.0.dev0"
    assert build.contexts["wheelhouse"] == tmp_path.resolve()
