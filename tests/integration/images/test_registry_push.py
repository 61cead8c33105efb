"""Images through a real registry: push, merge per-arch images, verify straight from it.

Debian's ``docker-registry`` (the CNCF distribution registry) runs on a free
127.0.0.1 port with its storage in a temporary folder. ``buildmatrix images``
builds the vLLM image with buildah (as tests/integration/images/test_buildah_build.py does) and pushes
it; a second platform joins it; ``--merge`` makes the manifest list by digest;
``verify --image docker://...`` reads it back from the registry. Then one layer
blob is corrupted inside the registry's own storage (a registry refuses an
upload whose digest does not match, so a tampered blob can only get there this
way) and verify must fail naming that blob.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from buildmatrix.loader import load_matrix
from tests.conftest import REPO_ROOT
from tests.support import container_base
from tests.support.wheelfactory import make_wheel

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``docker-registry serve`` on 127.0.0.1:<free port>; yields (host:port, storage root)."""
    if not Path(REGISTRY).exists():
        message = "docker-registry is not installed (apt-get install docker-registry, as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("registry")
    storage = root / "storage"
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (root / "registry.log").open("w")
    process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"docker-registry did not start: {(root / 'registry.log').read_text()}")
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", storage
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def private_buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    env = container_base.storage_env(tmp_path_factory.mktemp("registry-buildah"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


def _buildah(*args: str) -> str:
    return subprocess.run(
        ["buildah", *args], check=True, capture_output=True, text=True, env=os.environ
    ).stdout.strip()


def _pushed(output: str) -> dict[str, str]:
    """``{tag: REPO@DIGEST}`` from the summary's `pushed TAG: REPO@DIGEST` lines."""
    lines = [line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("pushed ")]
    return dict(line.split(": ", 1) for line in lines)


def _layer_blob(storage: Path, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


@pytest.mark.container
@pytest.mark.slow
def test_push_merge_and_verify_from_the_registry(
    cli: Callable[..., Any],
    private_buildah: dict[str, str],
    local_registry: tuple[str, Path],
    tmp_path: Path,
) -> None:
    host, storage = local_registry
    base_image = container_base.import_base_image(container_base.rootfs_tarball(), private_buildah)
    project = tmp_path / "project"
    project.mkdir()
    # The Debian base has Python 3.11; the real matrix's images use 3.12.
    text = (
        (REPO_ROOT / "matrix.toml")
        .read_text()
        .replace('\npython = "3.12"\nos = "ubuntu-24.04"', '\npython = "3.11"\nos = "ubuntu-24.04"')
    )
    (project / "matrix.toml").write_text(text)
    # The whole repository as verify reads it (meta package, docs page, Dockerfile).
    for folder in ("containers", "examples", "docs"):
        shutil.copytree(REPO_ROOT / folder, project / folder)
    matrix_path = project / "matrix.toml"
    assert cli("docs", "--matrix", matrix_path).code == 0  # the page follows the edited matrix
    release = load_matrix(matrix_path).releases[0]
    pins = {str(name): str(version) for name, version in release.pins.items()}
    links = tmp_path / "links"
    links.mkdir()
    make_wheel(links, "vllm", pins["vllm"], extras=("flashinfer",))
    make_wheel(
        links, "nixl", pins["nixl"], files={"nixl/libnixl.so": b"\x7fELF nixl"}, extras=("cu12", "cu13")
    )
    prefix = f"{host}/buildmatrix"
    common = [
        "--matrix",
        matrix_path,
        "--engine",
        "buildah",
        "--tag-prefix",
        prefix,
        "--out",
        tmp_path / "out",
    ]

    # 1. The amd64 image, built for real and pushed as a native runner's --split job does.
    result = cli(
        "images", "vllm", *common, "--split", "--push", "--platform", "linux/amd64",
        "--base-image", base_image, "--find-links", links, "--no-index",
    )  # fmt: skip
    assert result.code == 0, result.err
    amd64_tag = f"{prefix}/vllm-runtime:main-cuda12-amd64"
    amd64 = _pushed(result.out)[amd64_tag]
    assert amd64.startswith(f"{prefix}/vllm-runtime@sha256:")

    # 2. The arm64 image, assembled without emulation: the Dockerfile's RUN steps would
    #    need an arm64 CPU, so the amd64 image's file system is committed under an
    #    image config that says linux/arm64 and pushed as the arm64 runner would push
    #    it (a one-platform list). verify reads files and never executes them, so the
    #    checks are the same; what this platform adds is a second manifest, config
    #    and platform entry for the list, the merge and verify to handle.
    container = _buildah("from", "--pull=false", amd64_tag)
    try:
        _buildah("config", "--arch", "arm64", "--os", "linux", container)
        _buildah("commit", "--quiet", container, "localhost/buildmatrix-test/vllm-arm64:latest")
    finally:
        subprocess.run(["buildah", "rm", container], check=False, capture_output=True)
    _buildah("manifest", "create", "localhost/buildmatrix-test/vllm-arm64-list")
    _buildah(
        "manifest", "add", "localhost/buildmatrix-test/vllm-arm64-list",
        "containers-storage:localhost/buildmatrix-test/vllm-arm64:latest",
    )  # fmt: skip
    digest_file = tmp_path / "arm64.digest"
    _buildah(
        "manifest", "push", "--all", "--tls-verify=false", "--digestfile", str(digest_file),
        "localhost/buildmatrix-test/vllm-arm64-list", f"docker://{prefix}/vllm-runtime:main-cuda12-arm64",
    )  # fmt: skip
    arm64 = f"{prefix}/vllm-runtime@{digest_file.read_text().strip()}"

    # 3. The release workflow's path: verify each per-arch digest, then merge exactly those.
    for per_arch, platform in ((amd64, "linux/amd64"), (arm64, "linux/arm64")):
        # The image is main's; the committed installs results of other releases are theirs to answer.
        checked = cli(
            "verify",
            "--matrix",
            matrix_path,
            "--release",
            release.name,
            "--image",
            f"docker://{per_arch}",
            "--format",
            "json",
        )
        assert checked.code == 0, checked.out + checked.err
        image_checks = [c for c in json.loads(checked.out)["checks"] if c["subject"].startswith("docker://")]
        assert {c["subject"] for c in image_checks} == {f"docker://{per_arch} ({platform})"}
        assert all(c["ok"] for c in image_checks), [c for c in image_checks if not c["ok"]]
    result = cli(
        "images", "vllm", *common, "--merge", "--platform", "linux/amd64,linux/arm64",
        "--digest", f"linux/amd64={amd64.split('@')[1]}", "--digest", f"linux/arm64={arm64.split('@')[1]}",
    )  # fmt: skip
    assert result.code == 0, result.err
    merged = _pushed(result.out)[f"{prefix}/vllm-runtime:main-cuda12"]
    # skopeo, the peer tool, sees one list with both platforms, by digest.
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{merged}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    platforms = sorted(m["platform"]["architecture"] for m in json.loads(raw)["manifests"])
    assert platforms == ["amd64", "arm64"]

    # 4. The list from the registry: clean, on every platform, every blob verified.
    reference = f"docker://{merged}"
    result = cli(
        "verify", "--matrix", matrix_path, "--release", release.name, "--image", reference, "--format", "json"
    )
    assert result.code == 0, result.out + result.err
    checks = [c for c in json.loads(result.out)["checks"] if c["subject"].startswith(reference)]
    assert {c["subject"] for c in checks} == {f"{reference} (linux/amd64)", f"{reference} (linux/arm64)"}
    expected_checks = {"vllm", "nixl", "libnixl", "blob digests", "release", "layer paths"}
    assert {c["name"] for c in checks} >= expected_checks
    installed = [c["found"] for c in checks if c["name"] == "vllm" and "installed at" in c["detail"]]
    assert installed == [pins["vllm"], pins["vllm"]]

    # 5. One layer blob corrupted in the registry's storage: verify fails naming it.
    manifest = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{amd64_tag}"],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    if "manifests" in manifest:  # the per-arch push is a one-platform list
        manifest = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--raw", "--tls-verify=false",
                 f"docker://{prefix}/vllm-runtime@{manifest['manifests'][0]['digest']}"],
                check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
    layer = max(manifest["layers"], key=lambda d: d["size"])["digest"]  # the largest layer
    blob = _layer_blob(storage, layer)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    result = cli(
        "verify", "--matrix", matrix_path, "--release", release.name, "--image", reference, "--format", "json"
    )
    assert result.code == 1, result.out + result.err
    failed = [c for c in json.loads(result.out)["checks"] if not c["ok"]]
    # Both platforms share the layer; each fails on it, and on nothing else.
    assert {(c["subject"], c["name"]) for c in failed} == {
        (f"{reference} (linux/amd64)", f"blob {layer}"),
        (f"{reference} (linux/arm64)", f"blob {layer}"),
    }
    assert all("does not match its digest" in c["detail"] for c in failed)
