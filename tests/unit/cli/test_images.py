"""buildmatrix images on the command line: dry runs (JSON, table, buildah commands), flag checks,
base images per CUDA version, and a missing builder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.imagesetup import DOCKERFILE, Cli, copy_matrix, dry_run_json


def test_dry_run_json_shows_two_platforms_and_the_pins(cli: Cli, tmp_path: Path) -> None:
    data = dry_run_json(cli, "vllm", "--release", "0.7.1", "--engine", "buildx", "--out", tmp_path)
    assert data["engine"] == "buildx"
    (image,) = data["images"]
    assert image["platforms"] == ["linux/amd64", "linux/arm64"]
    assert image["pins"] == {"vllm": "0.11.0", "nixl": "0.7.1"}
    assert image["args"]["PINS"] == "vllm[flashinfer]==0.11.0 nixl[cu12]==0.7.1"
    assert image["labels"]["org.buildmatrix.pin.nixl"] == "0.7.1"
    bake = json.loads((tmp_path / "docker-bake.json").read_text())
    assert bake["target"]["vllm-v0_7_1-cuda12"]["args"] == image["args"]
    assert data["commands"][0].startswith("docker buildx bake --file")


def test_dry_run_all_and_buildah_commands(cli: Cli, tmp_path: Path) -> None:
    data = dry_run_json(cli, "all", "--engine", "buildah", "--platform", "linux/arm64", "--out", tmp_path)
    assert [i["framework"] for i in data["images"]] == ["vllm", "sglang", "trtllm"]
    assert all(i["platforms"] == ["linux/arm64"] for i in data["images"])
    assert all(c.startswith("buildah build ") for c in data["commands"])


def test_dry_run_table(cli: Cli, tmp_path: Path) -> None:
    result = cli("images", "sglang", "--engine", "buildah", "--dry-run", "--out", tmp_path)
    assert result.code == 0, result.err
    assert "sglang==0.5.6" in result.out
    assert "$ buildah build" in result.out


def test_unknown_framework_lists_the_known_ones(cli: Cli) -> None:
    result = cli("images", "vlm", "--dry-run")
    assert result.code == 2
    assert "unknown framework 'vlm'" in result.err
    assert "did you mean 'vllm'" in result.err
    assert "vllm, sglang, trtllm" in result.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tag-prefix", "Registry Example/x"], "--tag-prefix"),
        (["--tag-prefix", "reg.example.com/x:tag"], "--tag-prefix"),
        (["--cache-from", "reg.example.com/c@sha256:abc"], "--cache-from"),
        (["--cache-to", "type=registry,ref=x"], "--cache-to"),
        (["--base-image", "nvcr.io/nvidia/cuda:latest"], "latest"),
        (["--base-image", "ubuntu"], "no tag or digest"),
        (["--index-url", "ftp://mirror/simple"], "--index-url"),
        (["--index-url", "https://user:pw@mirror.example.com/simple"], "credentials"),
        (["--index-url", "https://mirror.example.com/simple; rm -rf /"], "--index-url"),
        (["--find-links", "/nonexistent/wheels"], "--find-links"),
        (["--secret", "id=x"], "--secret"),
        (["--secret", "id=bad id,src=/etc/hostname"], "--secret"),
        (["--secret", "id=x,src=/nonexistent"], "not a file"),
        (["--platform", "linux/s390x"], "unknown platform"),
        (["--push"], "--tag-prefix"),
        (["--no-index", "--index-url", "https://mirror.example.com/simple"], "--no-index"),
        (["--release", "v9.9.9"], "unknown release"),
    ],
)
def test_bad_flags_exit_2(cli: Cli, flags: list[str], message: str) -> None:
    result = cli("images", "vllm", "--dry-run", "--engine", "buildah", *flags)
    assert result.code == 2, result.err
    assert message in result.err


def test_split_and_merge_exclude_each_other(cli: Cli) -> None:
    result = cli("images", "vllm", "--split", "--merge", "--dry-run")
    assert result.code == 2


def test_no_framework_is_a_usage_error(cli: Cli) -> None:
    result = cli("images", "--dry-run")
    assert result.code == 2
    assert "vllm, sglang, trtllm" in result.err


def test_missing_pin_in_the_dockerfile_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    matrix = copy_matrix(tmp_path)
    dockerfile = tmp_path / "containers" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("ARG PINS\n", "ARG PINS\nARG PIN_UCX\n", 1))
    result = cli("images", "vllm", "--matrix", matrix, "--dry-run", "--engine", "buildah")
    assert result.code == 2
    assert "PIN_UCX" in result.err
    assert "the plan for release main does not compute them" in result.err


def test_pin_the_dockerfile_ignores_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    matrix = copy_matrix(tmp_path)
    dockerfile = tmp_path / "containers" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("ARG PINS\n", "", 1))
    result = cli("images", "vllm", "--matrix", matrix, "--dry-run", "--engine", "buildah")
    assert result.code == 2
    assert "declares no ARG PINS" in result.err


def test_base_image_per_cuda_version(cli: Cli, tmp_path: Path) -> None:
    data = dry_run_json(
        cli, "all", "--engine", "buildah", "--out", tmp_path,
        "--base-image", "mirror.example.com/cuda:13.0.0-runtime-ubuntu24.04",
        "--base-image", "12.8=mirror.example.com/cuda:12.8.1-runtime-ubuntu24.04",
    )  # fmt: skip
    bases = {i["framework"]: i["args"]["BASE_IMAGE"] for i in data["images"]}
    assert bases == {
        "vllm": "mirror.example.com/cuda:12.8.1-runtime-ubuntu24.04",
        "sglang": "mirror.example.com/cuda:12.8.1-runtime-ubuntu24.04",
        "trtllm": "mirror.example.com/cuda:13.0.0-runtime-ubuntu24.04",
    }
    assert all(
        i["labels"]["org.opencontainers.image.base.name"] == bases[i["framework"]] for i in data["images"]
    )


@pytest.mark.parametrize("value", ["11.0=mirror.example.com/cuda:11", "x=mirror.example.com/cuda:12"])
def test_base_image_for_unknown_cuda_is_exit_2(cli: Cli, value: str) -> None:
    result = cli("images", "vllm", "--dry-run", "--engine", "buildah", "--base-image", value)
    assert result.code == 2
    assert "--base-image" in result.err or "CUDA version" in result.err


def test_no_builder_exits_2_saying_what_to_install(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither docker nor buildah
    auto = cli("images", "vllm", "--out", tmp_path)
    assert auto.code == 2
    assert "buildah" in auto.err
    assert "buildx" in auto.err
    explicit = cli("images", "vllm", "--engine", "buildah", "--out", tmp_path)
    assert explicit.code == 2
    assert "apt-get install buildah" in explicit.err
    # A dry run needs no builder: it shows the buildx plan.
    dry = cli("images", "vllm", "--dry-run", "--format", "json", "--out", tmp_path)
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["engine"] == "buildx"


def _with_a_fourth_framework(text: str) -> str:
    """matrix.toml plus a `mocker` framework with its image: matrix edits only."""
    framework = (
        '[framework.mocker]\ndisplay = "Mocker"\ndistribution = "mocker"\nextra = "mocker"\n'
        'requires = ["mocker[fast]=={mocker}", "nixl[cu12]<={nixl}"]\n\n'
    )
    image = (
        '\n[image.mocker]\nname = "mocker-runtime"\ndockerfile = "containers/Dockerfile"\n'
        'target = "framework-runtime"\npython = "3.12"\nos = "ubuntu-24.04"\narch = ["x86_64"]\n'
    )
    edited = text.replace("[framework.vllm]\n", framework + "[framework.vllm]\n", 1)
    dependency = '[dependency.mocker]\ndisplay = "Mocker"\n\n'
    edited = edited.replace("[dependency.nixl]\n", dependency + "[dependency.nixl]\n", 1)
    edited = edited.replace("pins = { sglang = ", 'pins = { mocker = "1.0.0", sglang = ')
    edited = edited.replace('cuda = { sglang = "12.8",', 'cuda = { mocker = "12.8", sglang = "12.8",', 1)
    last_image = 'arch = ["x86_64", "aarch64"]\n'
    edited = edited.replace(last_image + "\n# ---", last_image + image + "\n# ---", 1)
    assert edited.count('pins = { mocker = "1.0.0"') == text.count("pins = { sglang = ") == 5
    assert "[image.mocker]" in edited, "matrix.toml's layout changed"
    assert 'cuda = { mocker = "12.8"' in edited, "matrix.toml's layout changed"
    return edited


def test_a_new_framework_needs_no_dockerfile_edit(cli: Cli, tmp_path: Path) -> None:
    matrix = copy_matrix(tmp_path, _with_a_fourth_framework)
    assert (tmp_path / "containers" / "Dockerfile").read_bytes() == DOCKERFILE.read_bytes()
    data = dry_run_json(cli, "all", "--matrix", matrix, "--engine", "buildah", "--out", tmp_path / "out")
    mocker = next(i for i in data["images"] if i["framework"] == "mocker")
    assert [i["framework"] for i in data["images"]] == ["vllm", "sglang", "trtllm", "mocker"]
    assert mocker["target"] == "framework-runtime"
    assert mocker["pins"] == {"mocker": "1.0.0", "nixl": "0.8.0"}
    assert mocker["args"]["FRAMEWORK"] == "mocker"
    assert mocker["args"]["PINS"] == "mocker[fast]==1.0.0 nixl[cu12]==0.8.0"
    assert mocker["labels"]["org.buildmatrix.pin.mocker"] == "1.0.0"
    assert mocker["tags"] == ["localhost/dynamo/mocker-runtime:main-cuda12"]
    assert any("--target framework-runtime" in c and "FRAMEWORK=mocker" in c for c in data["commands"])
