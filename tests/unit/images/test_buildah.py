"""buildmatrix.images.buildah: the buildah commands of a plan."""

from __future__ import annotations

from buildmatrix.images import (
    BuildahEngine,
    plan_images,
)
from buildmatrix.images.plan import resolve_frameworks
from buildmatrix.model import Matrix
from tests.support.imagesetup import FIXED


def test_buildah_commands(real_matrix: Matrix) -> None:
    (build,) = plan_images(
        real_matrix, real_matrix.releases[:1], resolve_frameworks(real_matrix, ["vllm"]), FIXED
    )
    build_cmd, push_cmd = BuildahEngine(real_matrix.root).build_commands(build, push=True)
    assert build_cmd[:2] == ["buildah", "build"]
    assert build_cmd[build_cmd.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert build_cmd[build_cmd.index("--manifest") + 1] == build.tags[0]
    assert "--build-arg" in build_cmd
    assert "PINS=vllm[flashinfer]==0.12.0 nixl[cu12]==0.8.0" in build_cmd
    assert "FRAMEWORK=vllm" in build_cmd
    assert "org.buildmatrix.pin.nixl=0.8.0" in build_cmd
    # The default prefix is localhost/...: a local registry, spoken to over plain HTTP.
    assert push_cmd == [
        "buildah", "manifest", "push", "--all", "--tls-verify=false", build.tags[0], f"docker://{build.tags[0]}"
    ]  # fmt: skip
