"""buildmatrix verify on images in buildah's storage: one committed by the test, one built by
the images command.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from buildmatrix.layers import open_image
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from buildmatrix.verify import VerifyOptions, verify
from tests.conftest import REPO_ROOT
from tests.support.ocifactory import GOOD_LABELS, SITE, Entry, good_layers
from tests.support.verifying import image_checks, run_verify
from tests.support.wheelfactory import make_wheel


def _buildah(*args: str) -> str:
    return subprocess.run(["buildah", *args], check=True, capture_output=True, text=True).stdout.strip()


def _write_tree(root: Path, entries: Sequence[Entry]) -> None:
    for entry in entries:
        target = root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "symlink":
            target.symlink_to(entry.link)
        elif entry.data is not None:
            target.write_bytes(entry.data)


@pytest.mark.container
def test_image_in_local_buildah_storage(tmp_path: Path, matrix: Matrix) -> None:
    """A two-layer image committed by buildah (the upper layer deletes files, so buildah
    writes real whiteouts), read by name and as a manifest list, never run."""
    name = f"localhost/buildmatrix-verify-test-{tmp_path.name.lower()}"
    base, top = good_layers()
    containers: list[str] = []
    try:
        _write_tree(tmp_path / "base", base)
        containers.append(_buildah("from", "scratch"))
        _buildah("copy", containers[-1], str(tmp_path / "base"), "/")
        _buildah("commit", "--quiet", containers[-1], f"{name}:base")
        containers.append(_buildah("from", f"{name}:base"))
        mount = Path(_buildah("mount", containers[-1]))
        shutil.rmtree(mount / SITE / "vllm-0.10.2.dist-info")
        shutil.rmtree(mount / "opt/nvidia/nvda_nixl")
        _write_tree(mount, [e for e in top if ".wh." not in e.path])
        _buildah("umount", containers[-1])
        for key, value in GOOD_LABELS.items():
            _buildah("config", "--label", f"{key}={value}", containers[-1])
        _buildah("commit", "--quiet", containers[-1], f"{name}:good")
        _buildah("manifest", "create", f"{name}-list:good")
        _buildah("manifest", "add", f"{name}-list:good", f"containers-storage:{name}:good")

        # The archives buildah writes (gzip layers), read like `docker save` output.
        oci_archive = tmp_path / "image.oci.tar"
        _buildah("push", "--quiet", f"{name}:good", f"oci-archive:{oci_archive}")
        docker_archive = tmp_path / "image.docker.tar"
        _buildah("push", "--quiet", f"{name}:good", f"docker-archive:{docker_archive}:{name}:good")
        references = (
            f"{name}:good",
            f"containers-storage:{name}-list:good",
            f"oci-archive:{oci_archive}",
            str(docker_archive),
        )
        for reference in references:
            report = run_verify(matrix, images=(reference,))
            checks = image_checks(report)
            assert not [e for e in report.errors if name in e], report.errors
            assert {"vllm", "nixl", "libnixl"} <= {c.name for c in checks}
            assert all(c.ok for c in checks), [c for c in checks if not c.ok]
        with open_image(f"{name}:good") as (view,):
            assert len(view.layers) == 2
        missing = run_verify(matrix, images=(f"{name}:missing",))
        assert missing.exit_code == 2
        assert any("not in local buildah storage" in e for e in missing.errors)
    finally:
        for container in containers:
            subprocess.run(["buildah", "rm", container], check=False, capture_output=True)
        subprocess.run(["buildah", "manifest", "rm", f"{name}-list:good"], check=False, capture_output=True)
        for tag in ("good", "base"):
            subprocess.run(["buildah", "rmi", f"{name}:{tag}"], check=False, capture_output=True)


@pytest.fixture(scope="module")
def private_buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private vfs buildah storage (as the images tests use), exported to subprocesses."""
    from tests.support import container_base

    env = container_base.storage_env(tmp_path_factory.mktemp("verify-buildah"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.mark.container
@pytest.mark.slow
def test_image_built_by_the_images_command(
    cli: Callable[..., Any], private_buildah: dict[str, str], tmp_path: Path
) -> None:
    """`buildmatrix images` builds the vLLM image for real; verify reads it from buildah
    storage clean; a tampered copy (vLLM METADATA edited, a second libnixl) fails,
    naming what is wrong."""
    from tests.support import container_base

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
    shutil.copytree(REPO_ROOT / "containers", project / "containers")
    matrix = load_matrix(project / "matrix.toml")
    release = matrix.releases[0]
    pins = {str(name): str(version) for name, version in release.pins.items()}
    links = tmp_path / "links"
    links.mkdir()
    make_wheel(links, "vllm", pins["vllm"], extras=("flashinfer",))
    make_wheel(
        links, "nixl", pins["nixl"], files={"nixl/libnixl.so": b"\x7fELF nixl"}, extras=("cu12", "cu13")
    )
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    make_wheel(wheelhouse, "ai-dynamo-runtime", str(release.version))
    prefix = "localhost/buildmatrix-verify-e2e"
    result = cli(
        "images", "vllm", "--matrix", project / "matrix.toml", "--engine", "buildah",
        "--platform", "linux/amd64", "--base-image", base_image, "--find-links", links,
        "--no-index", "--wheelhouse", wheelhouse, "--tag-prefix", prefix, "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.code == 0, result.err
    tag = f"{prefix}/vllm-runtime:main-cuda12"

    report = verify(matrix, VerifyOptions(images=(tag,)))
    checks = [c for c in report.checks if c.subject.startswith(tag)]
    assert not [e for e in report.errors if tag in e], report.errors
    names = {c.name for c in checks}
    assert {"vllm", "nixl", "libnixl", "ai-dynamo-runtime", "org.buildmatrix.release", "python"} <= names
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert [c.found for c in checks if c.name == "vllm" and "installed at" in c.detail] == [pins["vllm"]]

    manifest = json.loads(_buildah("manifest", "inspect", tag))
    instance = f"{prefix}/vllm-runtime@{manifest['manifests'][0]['digest']}"
    container = _buildah("from", "--pull=false", instance)
    try:
        root = Path(_buildah("mount", container))
        [metadata] = root.glob(f"opt/venv/lib/python3.*/site-packages/vllm-{pins['vllm']}.dist-info/METADATA")
        metadata.write_text(metadata.read_text().replace(f"Version: {pins['vllm']}", "Version: 0.10.2"))
        [library] = root.glob("opt/venv/lib/python3.*/site-packages/nixl/libnixl.so")
        (root / "usr/lib/libnixl.so").write_bytes(library.read_bytes())
        _buildah("umount", container)
        _buildah("commit", "--quiet", container, f"{prefix}/vllm-runtime:tampered")
    finally:
        subprocess.run(["buildah", "rm", container], check=False, capture_output=True)
    tampered = verify(matrix, VerifyOptions(images=(f"{prefix}/vllm-runtime:tampered",)))
    failed = {c.name: c for c in tampered.checks if not c.ok and "tampered" in c.subject}
    assert set(failed) == {"vllm", "libnixl"}
    assert failed["vllm"].found == "0.10.2"
    assert failed["libnixl"].found == "2 copies"
