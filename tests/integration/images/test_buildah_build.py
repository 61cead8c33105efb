"""buildmatrix images building for real with buildah (private storage, a debootstrapped base):
the pins land in the image, a missing pin or base image stops the build, a failed build is exit 1.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildmatrix.loader import load_matrix
from tests.support import container_base
from tests.support.imagesetup import DOCKERFILE, Cli, copy_matrix
from tests.support.wheelfactory import make_wheel


@pytest.fixture(scope="session")
def buildah_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private buildah storage for this session, exported to every subprocess."""
    env = container_base.storage_env(tmp_path_factory.mktemp("buildah-storage"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def base_image(buildah_env: dict[str, str]) -> str:
    """Debian minbase + python3 (cached across runs), imported into the session's storage."""
    return container_base.import_base_image(container_base.rootfs_tarball(), buildah_env)


def _buildah(*args: str) -> str:
    return subprocess.run(
        ["buildah", *args], check=True, capture_output=True, text=True, env=os.environ
    ).stdout


def _python_311_matrix(tmp_path: Path) -> Path:
    """The real matrix, except that images use the base's Python (Debian bookworm: 3.11)."""

    def edit(text: str) -> str:
        edited = text.replace(
            '\npython = "3.12"\nos = "ubuntu-24.04"', '\npython = "3.11"\nos = "ubuntu-24.04"'
        )
        assert edited.count('python = "3.11"') == 3, "matrix.toml's [image.*] layout changed"
        return edited

    return copy_matrix(tmp_path, edit)


@pytest.mark.container
@pytest.mark.slow
def test_real_buildah_build_carries_the_matrix_pins(cli: Cli, base_image: str, tmp_path: Path) -> None:
    matrix_path = _python_311_matrix(tmp_path / "project")
    matrix = load_matrix(matrix_path)
    release = matrix.releases[0]
    pins = {str(name): str(version) for name, version in release.pins.items()}
    links = tmp_path / "links"
    links.mkdir()
    make_wheel(links, "vllm", pins["vllm"], extras=("flashinfer",))
    make_wheel(links, "vllm", "0.0.1", extras=("flashinfer",))  # a decoy: == must win
    make_wheel(links, "nixl", pins["nixl"], extras=("cu12", "cu13"))
    # No sglang wheel: that image fails, and the vllm image must still be built.
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    make_wheel(wheelhouse, "ai-dynamo-runtime", str(release.version))
    prefix = "localhost/buildmatrix-test"

    result = cli(
        "images", "vllm", "sglang", "--matrix", matrix_path, "--engine", "buildah",
        "--platform", "linux/amd64", "--base-image", base_image, "--find-links", links,
        "--no-index", "--wheelhouse", wheelhouse, "--tag-prefix", prefix,
        "--out", tmp_path / "out", "--format", "json",
    )  # fmt: skip
    assert result.code == 1, result.err  # sglang failed
    report = json.loads(result.out)
    statuses = {r["name"]: r["status"] for r in report["results"]}
    assert statuses == {"vllm-main-cuda12": "built", "sglang-main-cuda12": "failed"}
    sglang_log = (tmp_path / "out" / "logs" / "sglang-main-cuda12.log").read_text()
    assert "sglang" in sglang_log
    assert "install_pins: error: pip could not install" in sglang_log

    tag = f"{prefix}/vllm-runtime:main-cuda12"
    manifest = json.loads(_buildah("manifest", "inspect", tag))
    (entry,) = manifest["manifests"]
    assert entry["platform"]["architecture"] == "amd64"
    image = f"{prefix}/vllm-runtime@{entry['digest']}"
    labels = json.loads(_buildah("inspect", "--type", "image", image))["OCIv1"]["config"]["Labels"]
    assert labels["org.buildmatrix.pin.vllm"] == pins["vllm"]
    assert labels["org.buildmatrix.pin.nixl"] == pins["nixl"]
    assert labels["org.buildmatrix.release"] == "main"
    assert labels["org.buildmatrix.framework"] == "vllm"
    assert labels["org.opencontainers.image.version"] == str(release.version)
    assert labels["org.opencontainers.image.source"] == matrix.source_url
    assert labels["org.opencontainers.image.base.name"] == base_image
    for key in ("org.opencontainers.image.revision", "org.opencontainers.image.created"):
        assert labels[key]

    container = _buildah("from", "--pull=false", image).strip()
    try:
        pins_file = json.loads(_buildah("run", container, "--", "cat", "/opt/buildmatrix/pins.json"))
        installed = json.loads(
            _buildah(
                "run",
                container,
                "--",
                "python",
                "-c",
                "import importlib.metadata as m, json; print(json.dumps("
                "{d.metadata['Name']: d.version for d in m.distributions()}))",
            )
        )
    finally:
        _buildah("rm", container)
    assert pins_file == {
        "release": "main",
        "framework": "vllm",
        "cuda": str(release.cuda["vllm"]),
        "python": "3.11",
        "pins": {"vllm": pins["vllm"], "nixl": pins["nixl"]},
    }
    assert installed["vllm"] == pins["vllm"]
    assert installed["nixl"] == pins["nixl"]
    assert installed["ai-dynamo-runtime"] == str(release.version)  # the toolkit's own wheel


@pytest.mark.container
@pytest.mark.slow
def test_real_build_stops_at_once_without_a_pin(base_image: str, tmp_path: Path) -> None:
    """Built by hand with NIXL's pin empty, the Dockerfile fails before pip runs, naming it."""
    result = subprocess.run(
        [
            "buildah", "build", "--file", str(DOCKERFILE), "--target", "framework-runtime",
            "--platform", "linux/amd64", "--build-arg", f"BASE_IMAGE={base_image}",
            "--build-arg", "PYTHON_VERSION=3.11", "--build-arg", "BUILDMATRIX_CUDA=12.8",
            "--build-arg", "RELEASE=main", "--build-arg", "FRAMEWORK=vllm",
            "--build-arg", "PINS=vllm[flashinfer]==0.12.0 nixl[cu12]==", "--build-arg", "NO_INDEX=1",
            str(DOCKERFILE.parent),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "build arg PINS: pin 'nixl[cu12]=='" in output
    assert "Successfully installed" not in output
    assert "Looking in links" not in output


@pytest.mark.container
@pytest.mark.slow
def test_real_build_without_base_image_names_the_arg(base_image: str) -> None:
    result = subprocess.run(
        [
            "buildah", "build", "--file", str(DOCKERFILE), "--target", "framework-runtime",
            "--build-arg", "PYTHON_VERSION=3.11", str(DOCKERFILE.parent),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "BASE_IMAGE" in result.stdout + result.stderr


@pytest.mark.container
def test_failed_build_is_exit_1_with_summary_and_log(
    cli: Cli, buildah_env: dict[str, str], tmp_path: Path
) -> None:
    """An unreachable base image: the build fails, the table says so, the log has buildah's error."""
    result = cli(
        "images", "vllm", "--engine", "buildah", "--platform", "linux/amd64",
        "--base-image", "localhost/buildmatrix-missing-base:1", "--out", tmp_path,
    )  # fmt: skip
    assert result.code == 1
    assert "0 of 1 image(s) ok" in result.out
    assert "failed" in result.out
    assert "vllm-main-cuda12: buildah build exited" in result.err
    log = (tmp_path / "logs" / "vllm-main-cuda12.log").read_text()
    assert "+ buildah build" in log
    assert "localhost/buildmatrix-missing-base:1" in log
