"""buildmatrix verify: the image layer reader, the index client and every check.

Images are real OCI layouts, OCI archives and docker-save tarballs written by
the tests (index, manifest, config, gzip/zstd/plain layers); wheels are built by
hatchling from packages written by the tests; the index is a PEP 503/691 server
on 127.0.0.1 run by a thread.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from buildmatrix.layers import ImageError, ScanRequest, open_image
from buildmatrix.layers.stream import ForwardReader, members, open_layer_tar
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from buildmatrix.verify import Report, VerifyOptions, verify
from buildmatrix.verify.generated import check_docs_page, check_image_plan
from buildmatrix.verify.images import LIBNIXL_PATTERNS
from buildmatrix.verify.index import IndexConfig, SimpleIndexClient, index_config
from tests.conftest import REPO_ROOT
from tests.support.wheelfactory import make_wheel

SITE = "usr/local/lib/python3.12/dist-packages"

# v0.7.1 of the real matrix: vllm 0.11.0, nixl 0.7.1, extra nixl[cu12]<=0.7.1.
RELEASE = "v0.7.1"
GOOD_LABELS = {
    "org.buildmatrix.release": "v0.7.1",
    "org.buildmatrix.framework": "vllm",
    "org.buildmatrix.cuda": "12.8",
    "org.buildmatrix.python": "3.12",
    "org.buildmatrix.pin.vllm": "0.11.0",
    "org.buildmatrix.pin.nixl": "0.7.1",
}
GOOD_PINS = {
    "release": "v0.7.1",
    "framework": "vllm",
    "cuda": "12.8",
    "python": "3.12",
    "pins": {"vllm": "0.11.0", "nixl": "0.7.1"},
}


# --------------------------------------------------------------------------- image builders


@dataclass(frozen=True)
class Entry:
    path: str
    data: bytes | None = b""  # None: a directory
    link: str = ""  # symlink target, or hardlink target with kind="hardlink"
    kind: str = "file"


def metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nA long description.\n".encode()


def dist(name: str, version: str, site: str = SITE) -> Entry:
    folder = f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    return Entry(f"{site}/{folder}/METADATA", metadata(name, version))


def layer_tar(entries: Sequence[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            if entry.data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                archive.addfile(info)
            elif entry.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry.link
                archive.addfile(info)
            else:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def compress(data: bytes, compression: str) -> tuple[bytes, str]:
    if compression == "gzip":
        return gzip.compress(data), "application/vnd.oci.image.layer.v1.tar+gzip"
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data), "application/vnd.oci.image.layer.v1.tar+zstd"
    return data, "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class ImageSpec:
    layers: Sequence[Sequence[Entry]]
    labels: Mapping[str, str]
    platform: str = "linux/amd64"
    compression: str = "gzip"


def _put_blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    blob = root / "blobs" / "sha256" / digest
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _image_manifest(root: Path, spec: ImageSpec) -> dict[str, Any]:
    os_name, arch = spec.platform.split("/")
    layer_descriptors, diff_ids = [], []
    for entries in spec.layers:
        raw = layer_tar(entries)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data, media_type = compress(raw, spec.compression)
        layer_descriptors.append({"mediaType": media_type, **_put_blob(root, data)})
    config = {
        "architecture": arch,
        "os": os_name,
        "config": {"Labels": dict(spec.labels)},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_descriptor = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_put_blob(root, json.dumps(config).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": layer_descriptors,
    }
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_put_blob(root, json.dumps(manifest).encode()),
        "platform": {"os": os_name, "architecture": arch},
    }


def write_oci_layout(root: Path, *specs: ImageSpec, tag: str = "latest") -> Path:
    """An OCI image layout; several specs become one multi-arch image index."""
    root.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = [_image_manifest(root, spec) for spec in specs]
    if len(manifests) == 1:
        top = manifests[0]
    else:
        nested = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }
        top = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            **_put_blob(root, json.dumps(nested).encode()),
        }
    top = {**top, "annotations": {"org.opencontainers.image.ref.name": tag}}
    top.pop("platform", None)
    index = {"schemaVersion": 2, "manifests": [top]}
    (root / "index.json").write_text(json.dumps(index))
    return root


def write_oci_archive(path: Path, layout: Path) -> Path:
    with tarfile.open(path, "w") as archive:
        for item in sorted(layout.rglob("*")):
            archive.add(item, arcname=str(item.relative_to(layout)), recursive=False)
    return path


def write_docker_archive(path: Path, spec: ImageSpec, tag: str = "vllm-runtime:0.7.1") -> Path:
    """What `docker save` writes: manifest.json, <config>.json and <id>/layer.tar (plain)."""
    os_name, arch = spec.platform.split("/")
    layer_paths, diff_ids, files = [], [], {}
    for entries in spec.layers:
        raw = layer_tar(entries)
        digest = hashlib.sha256(raw).hexdigest()
        layer_paths.append(f"{digest}/layer.tar")
        diff_ids.append(f"sha256:{digest}")
        files[f"{digest}/layer.tar"] = raw
    config = json.dumps(
        {
            "architecture": arch,
            "os": os_name,
            "config": {"Labels": dict(spec.labels)},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    files[config_name] = config
    files["manifest.json"] = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": layer_paths}]
    ).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def pins_file(pins: Mapping[str, Any] = GOOD_PINS) -> Entry:
    return Entry("opt/buildmatrix/pins.json", json.dumps(pins).encode())


def base_layer() -> list[Entry]:
    return [
        Entry("usr", None),
        Entry("usr/lib/x86_64-linux-gnu/libc.so.6", b"\x7fELF" + b"\0" * 64),
        # An older vLLM the next layer removes with a whiteout.
        dist("vllm", "0.10.2"),
        Entry("opt/nvidia/nvda_nixl/lib/libnixl.so", b"\x7fELF old copy"),
    ]


def good_layers() -> list[list[Entry]]:
    return [
        base_layer(),
        [
            Entry(f"{SITE}/.wh.vllm-0.10.2.dist-info"),
            # An opaque whiteout hides the source-built NIXL of the base layer.
            Entry("opt/nvidia/nvda_nixl/.wh..wh..opq"),
            Entry("opt/nvidia/nvda_nixl/README", b"replaced"),
            Entry(f"{SITE}/nixl_cu12/libnixl.so", b"\x7fELF wheel copy"),
            Entry(f"{SITE}/nixl_cu12/libnixl.so.0", link="libnixl.so", kind="symlink"),
            dist("nixl", "0.7.1"),
            dist("nixl-cu12", "0.7.1"),
            dist("vllm", "0.11.0"),
            dist("ai-dynamo", "0.7.1"),
            dist("ai-dynamo-runtime", "0.7.1"),
            pins_file(),
        ],
    ]


def good_spec(**changes: Any) -> ImageSpec:
    values: dict[str, Any] = {"layers": good_layers(), "labels": GOOD_LABELS}
    values.update(changes)
    return ImageSpec(**values)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO_ROOT / "matrix.toml")


def run_verify(matrix: Matrix, **options: Any) -> Report:
    return verify(matrix, VerifyOptions(**options))


def image_checks(report: Report) -> list[Any]:
    # The committed `installs` results are checked too (tests/test_installs.py covers them).
    return [c for c in report.checks if not c.subject.endswith(("pyproject.toml", "installs.json"))]


def failed_names(report: Report) -> set[str]:
    return {c.name for c in image_checks(report) if not c.ok}


# --------------------------------------------------------------------------- layer reader


def test_reads_oci_layout_honouring_whiteouts(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    request = ScanRequest(
        distributions=frozenset({canonicalize_name("vllm"), canonicalize_name("nixl")}),
        files=frozenset({"/opt/buildmatrix/pins.json"}),
        library_patterns=LIBNIXL_PATTERNS,
    )
    with open_image(f"oci:{layout}") as views:
        assert len(views) == 1
        view = views[0]
        assert view.platform == "linux/amd64"
        assert view.labels["org.buildmatrix.pin.vllm"] == "0.11.0"
        result = view.scan(request)
    assert result.complete
    assert [d.version for d in result.distributions[canonicalize_name("vllm")]] == [Version("0.11.0")]
    assert result.distributions[canonicalize_name("vllm")][0].layer == 1
    # The base layer's copy is behind an opaque whiteout; the symlink is no copy.
    assert result.libraries == (f"/{SITE}/nixl_cu12/libnixl.so",)
    assert json.loads(result.files["/opt/buildmatrix/pins.json"])["release"] == "v0.7.1"
    assert result.unsafe_paths == ()


def test_quick_scan_stops_in_the_top_layer(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    request = ScanRequest(distributions=frozenset({canonicalize_name("vllm")}))
    with open_image(str(layout)) as (view,):
        result = view.scan(request)
    assert not result.complete
    assert (result.layers_read, result.layers_total) == (1, 2)


def test_later_layer_wins_for_the_same_path(tmp_path: Path) -> None:
    path = f"{SITE}/vllm-0.11.0.dist-info/METADATA"
    spec = ImageSpec(
        layers=[[Entry(path, metadata("vllm", "0.11.0"))], [Entry(path, metadata("vllm", "0.9.9"))]],
        labels={},
    )
    layout = write_oci_layout(tmp_path / "img", spec)
    with open_image(str(layout)) as (view,):
        result = view.scan(
            ScanRequest(distributions=frozenset({canonicalize_name("vllm")}), library_patterns=("x",))
        )
    assert [d.version for d in result.distributions[canonicalize_name("vllm")]] == [Version("0.9.9")]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_layer_compressions(tmp_path: Path, compression: str) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec(compression=compression))
    with open_image(str(layout)) as (view,):
        result = view.scan(ScanRequest(distributions=frozenset({canonicalize_name("nixl")})))
    assert result.distributions[canonicalize_name("nixl")][0].version == Version("0.7.1")


def test_unsafe_paths_are_reported_and_never_used(tmp_path: Path) -> None:
    layers = [
        *good_layers(),
        [
            Entry("../../etc/cron.d/evil", b"* * * * * root sh"),
            Entry(f"{SITE}/../../../../../tmp/vllm-9.9.9.dist-info/METADATA", metadata("vllm", "9.9.9")),
            Entry("etc/passwd-link", link="../../../etc/shadow", kind="hardlink"),
        ],
    ]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    with open_image(str(layout)) as (view,):
        result = view.scan(
            ScanRequest(distributions=frozenset({canonicalize_name("vllm")}), library_patterns=("x",))
        )
    assert len(result.unsafe_paths) == 3
    assert [d.version for d in result.distributions[canonicalize_name("vllm")]] == [Version("0.11.0")]
    assert not (tmp_path / "etc").exists()


def test_unreadable_images_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "image.tar"
    garbage.write_bytes(b"not a tar" * 100)
    with pytest.raises(ImageError, match=r"not a tar archive"), open_image(str(garbage)):
        pass
    with pytest.raises(ImageError, match="does not exist"), open_image(f"oci:{tmp_path}/nope"):
        pass
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match=r"without index\.json"), open_image(str(empty)):
        pass


def test_corrupt_layer_is_an_image_error(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    index = json.loads((layout / "index.json").read_text())
    manifest_blob = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    top_layer = json.loads(manifest_blob.read_text())["layers"][-1]["digest"].split(":")[1]
    (layout / "blobs/sha256" / top_layer).write_bytes(gzip.compress(b"x" * 1000)[:50])
    with open_image(str(layout)) as (view,), pytest.raises(ImageError, match="layer sha256:"):
        view.scan(ScanRequest(distributions=frozenset({canonicalize_name("vllm")})))


def test_layer_stream_gzip_members_padding_and_large_skips() -> None:
    big = Entry("opt/zeros.bin", b"\0" * (64 * 1024 * 1024))  # 64 MiB inflating from ~64 KiB
    raw = layer_tar([big, dist("vllm", "0.11.0")])
    # Two gzip members back to back (what pigz or concatenation writes), then padding.
    data = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + b"\0" * 512
    with open_layer_tar(io.BytesIO(data)) as archive:
        names = []
        for member in members(archive):
            names.append(member.name)
            if member.name.endswith("METADATA"):
                handle = archive.extractfile(member)
                assert handle is not None
                assert b"Version: 0.11.0" in handle.read()
        assert names == ["opt/zeros.bin", f"{SITE}/vllm-0.11.0.dist-info/METADATA"]
        assert archive.getmembers() == []  # nothing is remembered


def test_layer_stream_refuses_to_seek_back_and_reports_truncation() -> None:
    chunks = [b"abcdef"]
    reader = ForwardReader(lambda _limit: chunks.pop() if chunks else b"")
    assert reader.read(2) == b"ab"
    assert reader.seek(4) == 4
    assert reader.read() == b"ef"
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(1)
    whole = gzip.compress(layer_tar([Entry("opt/random.bin", os.urandom(200_000)), dist("vllm", "0.11.0")]))
    truncated = whole[: len(whole) // 2]
    with pytest.raises((EOFError, tarfile.TarError)), open_layer_tar(io.BytesIO(truncated)) as archive:
        list(members(archive))


# --------------------------------------------------------------------------- image checks


def test_good_image_verifies_clean_from_every_source(tmp_path: Path, matrix: Matrix) -> None:
    layout = write_oci_layout(tmp_path / "layout", good_spec())
    archive = write_oci_archive(tmp_path / "image.oci.tar", layout)
    saved = write_docker_archive(tmp_path / "image.docker.tar", good_spec())
    for reference in (f"oci:{layout}:latest", f"oci-archive:{archive}", str(saved)):
        report = run_verify(matrix, images=(reference,))
        checks = image_checks(report)
        assert checks, reference
        assert all(c.ok for c in checks), [c for c in checks if not c.ok]
        names = {c.name for c in checks}
        assert {"vllm", "nixl", "libnixl", "org.buildmatrix.release", "org.buildmatrix.framework"} <= names
        installed = [c for c in checks if c.name == "vllm" and "installed at" in c.detail]
        assert installed[0].found == "0.11.0"


def test_tampered_image_fails_naming_the_distribution(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers[1] = [e for e in layers[1] if "vllm-0.11.0" not in e.path and ".wh.vllm" not in e.path]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.name, c.expected, c.found) for c in failed] == [("vllm", "==0.11.0", "0.10.2")]
    assert report.exit_code == 1 or report.errors


def test_wrong_labels_and_pins_file(tmp_path: Path, matrix: Matrix) -> None:
    labels = {**GOOD_LABELS, "org.buildmatrix.pin.vllm": "0.10.2"}
    pins = {**GOOD_PINS, "pins": {"vllm": "0.11.0", "nixl": "0.6.0"}}
    layers = good_layers()
    layers[1] = [e for e in layers[1] if not e.path.endswith("pins.json")] + [pins_file(pins)]
    layout = write_oci_layout(tmp_path / "img", good_spec(labels=labels, layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert sorted((c.name, c.detail) for c in failed) == [
        ("nixl", "/opt/buildmatrix/pins.json: pins.nixl"),
        ("vllm", "label org.buildmatrix.pin.vllm"),
    ]


def test_two_libnixl_copies_and_nixl_outside_the_specifier(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers[1] = [
        e for e in layers[1] if ".wh..wh..opq" not in e.path and "nixl-0.7.1.dist-info" not in e.path
    ] + [dist("nixl", "0.8.0")]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = {c.name: c for c in image_checks(report) if not c.ok}
    assert set(failed) == {"libnixl", "nixl"}
    assert failed["libnixl"].found == "2 copies"
    assert "/opt/nvidia/nvda_nixl/lib/libnixl.so" in failed["libnixl"].detail
    assert (failed["nixl"].expected, failed["nixl"].found) == ("<=0.7.1", "0.8.0")
    # --quick does not read every layer, so it cannot count copies.
    quick = run_verify(matrix, images=(str(layout),), quick=True)
    assert "libnixl" not in {c.name for c in image_checks(quick)}


def test_toolkit_wheels_in_the_image_match_the_release(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers[1] = [e for e in layers[1] if "ai_dynamo_runtime" not in e.path] + [
        dist("ai-dynamo-runtime", "0.7.0")
    ]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.name, c.expected, c.found) for c in failed] == [("ai-dynamo-runtime", "==0.7.1", "0.7.0")]
    ok_names = {c.name for c in image_checks(report) if c.ok}
    assert {"ai-dynamo", "cuda", "python"} <= ok_names


def test_release_label_must_be_the_selected_release(tmp_path: Path, matrix: Matrix) -> None:
    unknown = write_oci_layout(
        tmp_path / "unknown", good_spec(labels={**GOOD_LABELS, "org.buildmatrix.release": "v9.9"})
    )
    selected = (matrix.find_release(RELEASE),)
    assert failed_names(run_verify(matrix, images=(str(unknown),), releases=selected)) == {
        "org.buildmatrix.release"
    }
    good = write_oci_layout(tmp_path / "good", good_spec())
    other = run_verify(matrix, images=(str(good),), releases=(matrix.find_release("main"),))
    [check] = [c for c in image_checks(other) if not c.ok]
    assert check.detail == "the image belongs to another release than the one selected"


def test_missing_labels_and_escaping_paths_fail(tmp_path: Path, matrix: Matrix) -> None:
    layers = [*good_layers(), [Entry("../outside", b"x")]]
    layout = write_oci_layout(tmp_path / "img", good_spec(labels={}, layers=layers))
    report = run_verify(matrix, images=(str(layout),), releases=(matrix.find_release(RELEASE),))
    failed = failed_names(report)
    assert {"org.buildmatrix.release", "org.buildmatrix.framework"} <= failed
    layout2 = write_oci_layout(tmp_path / "img2", good_spec(layers=layers))
    failed2 = failed_names(run_verify(matrix, images=(str(layout2),)))
    assert failed2 == {"layer paths"}


def test_multi_arch_image_checks_each_platform(tmp_path: Path, matrix: Matrix) -> None:
    arm_layers = good_layers()
    arm_layers[1] = [e for e in arm_layers[1] if "vllm-0.11.0" not in e.path] + [dist("vllm", "0.11.1")]
    layout = write_oci_layout(
        tmp_path / "img",
        good_spec(),
        good_spec(platform="linux/arm64", layers=arm_layers),
    )
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.subject.rsplit(" ", 1)[-1], c.name) for c in failed] == [("(linux/arm64)", "vllm")]
    only_amd = run_verify(matrix, images=(str(layout),), platform="linux/amd64")
    assert all(c.ok for c in image_checks(only_amd))


def test_unreadable_image_reports_the_other_checks(tmp_path: Path, matrix: Matrix) -> None:
    good = write_oci_layout(tmp_path / "good", good_spec())
    report = run_verify(matrix, images=(str(tmp_path / "missing.tar"), str(good)))
    assert report.exit_code == 2
    assert any("missing.tar" in error for error in report.errors)
    assert image_checks(report)
    assert all(c.ok for c in image_checks(report))


# --------------------------------------------------------------------------- wheels


def build_meta_wheel(tmp_path: Path, version: str, extras: Mapping[str, list[str]]) -> Path:
    """A real meta wheel built by hatchling from a package written here."""
    project = tmp_path / f"ai-dynamo-{version}-{len(list(tmp_path.iterdir()))}"
    (project / "src" / "ai_dynamo").mkdir(parents=True)
    (project / "src" / "ai_dynamo" / "__init__.py").write_text("")
    extra_lines = "\n".join(f"{name} = {json.dumps(reqs)}" for name, reqs in extras.items())
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "ai-dynamo"
            version = "{version}"
            dependencies = ["ai-dynamo-runtime=={version}"]

            [project.optional-dependencies]
            """
        )
        + extra_lines
        + '\n\n[tool.hatch.build.targets.wheel]\npackages = ["src/ai_dynamo"]\n'
    )
    out = project / "dist"
    code = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    name = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out / name


RIGHT_EXTRAS = {
    "vllm": ["vllm[flashinfer]==0.11.0", "nixl[cu12]<=0.7.1"],
    "sglang": ["sglang==0.5.3.post4", "nixl[cu12]<=0.7.1"],
    "trtllm": ["tensorrt-llm==1.2.0rc3"],
}


@pytest.mark.slow
def test_meta_wheel_with_right_extras_passes(tmp_path: Path, matrix: Matrix) -> None:
    wheel = build_meta_wheel(tmp_path, "0.7.1", RIGHT_EXTRAS)
    report = run_verify(matrix, wheels=(wheel,))
    checks = [c for c in report.checks if c.subject == str(wheel)]
    assert len(checks) == 1 + 1 + 5  # version, runtime, each extra's requirements
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.slow
def test_meta_wheel_with_wrong_extras_names_each(tmp_path: Path, matrix: Matrix) -> None:
    wrong = {
        "vllm": ["vllm[flashinfer]==0.10.2", "nixl[cu12]<=0.7.1"],  # wrong pin
        "sglang": ["sglang>=0.5.3", "nixl[cu12]<=0.6.0"],  # not exact; NIXL too low
        # trtllm: missing altogether
    }
    wheel = build_meta_wheel(tmp_path, "0.7.1", wrong)
    report = run_verify(matrix, wheels=(wheel,))
    failed = {(c.name, c.detail.split(":")[0]) for c in report.checks if not c.ok and c.subject == str(wheel)}
    assert failed == {
        ("vllm", "extra 'vllm'"),
        ("sglang", "extra 'sglang'"),
        ("nixl", "extra 'sglang'"),
        ("tensorrt-llm", "extra 'trtllm' is missing (v0.7.1)"),
        ("trtllm", "the wheel does not provide the extra 'trtllm' (v0.7.1)"),
    }
    vllm = next(c for c in report.checks if c.name == "vllm" and not c.ok)
    assert (vllm.expected, vllm.found) == ("vllm[flashinfer]==0.11.0", "vllm[flashinfer]==0.10.2")


@pytest.mark.slow
def test_wheel_of_an_unknown_version_or_runtime_mismatch(tmp_path: Path, matrix: Matrix) -> None:
    wheel = build_meta_wheel(tmp_path, "0.6.9", RIGHT_EXTRAS)
    report = run_verify(matrix, wheels=(wheel,))
    [check] = [c for c in report.checks if c.subject == str(wheel)]
    assert not check.ok
    assert check.detail == "no release of the matrix has this version"
    # Checked against a chosen release, the runtime requirement is wrong too.
    report = run_verify(matrix, wheels=(wheel,), releases=(matrix.find_release(RELEASE),))
    failed = {c.name for c in report.checks if not c.ok and c.subject == str(wheel)}
    assert failed == {"ai-dynamo", "ai-dynamo-runtime"}


def test_unreadable_wheel_is_exit_2_with_other_checks(tmp_path: Path, matrix: Matrix) -> None:
    broken = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    good = write_oci_layout(tmp_path / "good", good_spec())
    report = run_verify(matrix, wheels=(broken,), images=(str(good),))
    assert report.exit_code == 2
    assert any(str(broken) in error for error in report.errors)
    assert image_checks(report)


# --------------------------------------------------------------------------- repository


def _repo_with_meta_pyproject(tmp_path: Path, extras: Mapping[str, list[str]], version: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "matrix.toml", tmp_path / "matrix.toml")
    shutil.copytree(REPO_ROOT / "containers", tmp_path / "containers")  # the image plan reads it
    package = tmp_path / "examples" / "ai-dynamo"
    package.mkdir(parents=True)
    extra_lines = "\n".join(f"{name} = {json.dumps(reqs)}" for name, reqs in extras.items())
    (package / "pyproject.toml").write_text(
        f'[project]\nname = "ai-dynamo"\nversion = "{version}"\n'
        f'dependencies = ["ai-dynamo-runtime=={version}"]\n\n'
        f"[project.optional-dependencies]\n{extra_lines}\n"
    )
    return tmp_path / "matrix.toml"


MAIN_EXTRAS = {
    "vllm": ["vllm[flashinfer]==0.12.0", "nixl[cu12]<=0.8.0"],
    "sglang": ["sglang==0.5.6", "nixl[cu12]<=0.8.0"],
    "trtllm": ["tensorrt-llm==1.2.0rc5"],
}


def test_pyproject_in_sync_and_drifted(tmp_path: Path) -> None:
    path = _repo_with_meta_pyproject(tmp_path / "ok", MAIN_EXTRAS, "0.8.0.dev0")
    report = verify(load_matrix(path), VerifyOptions())
    pyproject_checks = [c for c in report.checks if c.subject.endswith("pyproject.toml")]
    assert len(pyproject_checks) == 6  # the runtime requirement and 5 in the extras
    assert all(c.ok for c in pyproject_checks)
    # The upstream drift: pyproject said vLLM 0.10.2 while the release builds 0.12.0.
    drifted = {**MAIN_EXTRAS, "vllm": ["vllm[flashinfer]==0.10.2", "nixl[cu12]<=0.8.0"]}
    path = _repo_with_meta_pyproject(tmp_path / "drift", drifted, "0.8.0.dev0")
    report = verify(load_matrix(path), VerifyOptions())
    failed = [c for c in report.checks if not c.ok]
    # The page is missing in this scratch repository too.
    assert [(c.name, c.found) for c in failed] == [
        ("vllm", "vllm[flashinfer]==0.10.2"),
        ("support-matrix", "(missing)"),
    ]
    assert report.exit_code == 1


def test_pyproject_with_extras_generated_at_build_time(tmp_path: Path) -> None:
    """Extras written at build time are checked by building (tests/test_release_gate.py):
    a package whose build ignores the generated extras fails, never "ok"."""
    path = _repo_with_meta_pyproject(tmp_path, {}, "0.0.0")
    pyproject = tmp_path / "examples" / "ai-dynamo" / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "ai-dynamo"\ndynamic = ["version", "dependencies", "optional-dependencies"]\n'
    )
    report = verify(load_matrix(path), VerifyOptions())
    built = [c for c in report.checks if c.subject.endswith("ai-dynamo (as built for main)")]
    assert {c.detail for c in built if not c.ok} >= {
        "extra 'vllm' is missing (main)",
        "base requirements does not require ai-dynamo-runtime (main)",
    }
    assert report.exit_code == 1
    # A broken requirement is bad input (exit 2), named with its place.
    pyproject.write_text('[project]\nname = "ai-dynamo"\ndependencies = ["vllm ==="]\n')
    report = verify(load_matrix(path), VerifyOptions())
    assert report.exit_code == 2
    assert any("dependencies: invalid requirement 'vllm ==='" in e for e in report.errors)


def test_pyproject_version_selects_its_release(tmp_path: Path) -> None:
    path = _repo_with_meta_pyproject(tmp_path, RIGHT_EXTRAS, "0.7.1")
    report = verify(load_matrix(path), VerifyOptions())
    pyproject_checks = [c for c in report.checks if c.subject.endswith("pyproject.toml")]
    assert pyproject_checks
    assert all(c.ok and "(v0.7.1)" in c.detail for c in pyproject_checks)
    # Selecting another release does not check the file against that one.
    report = verify(load_matrix(path), VerifyOptions(releases=(load_matrix(path).releases[0],)))
    assert all(c.ok and "(v0.7.1)" in c.detail for c in report.checks if c.subject.endswith("pyproject.toml"))


def test_docs_page_in_sync_stale_and_missing(tmp_path: Path) -> None:
    from buildmatrix import docs

    path = _repo_with_meta_pyproject(tmp_path, MAIN_EXTRAS, "0.8.0.dev0")
    matrix = load_matrix(path)
    [missing] = check_docs_page(matrix)
    assert (missing.ok, missing.found) == (False, "(missing)")
    page = tmp_path / "docs" / "support-matrix.md"
    page.parent.mkdir()
    page.write_text(docs.render(matrix), encoding="utf-8")
    [fresh] = check_docs_page(matrix)
    assert fresh.ok
    # Someone bumps vLLM on the page by hand instead of in the matrix.
    text = page.read_text(encoding="utf-8")
    assert "0.12.0" in text
    page.write_text(text.replace("0.12.0", "0.12.1", 1), encoding="utf-8")
    [stale] = check_docs_page(matrix)
    assert not stale.ok
    assert stale.found == "1 stale lines"
    assert "0.12.1" in stale.detail


@dataclass(frozen=True)
class FakeBuild:
    """The fields of buildmatrix.images.plan.ImageBuild that verify reads."""

    name: str
    release: str
    framework: str
    args: Mapping[str, str]
    labels: Mapping[str, str]
    pins: Mapping[str, str]


def _planned(**changes: Any) -> FakeBuild:
    values: dict[str, Any] = {
        "name": "vllm-v0_7_1-cuda12",
        "release": "v0.7.1",
        "framework": "vllm",
        "args": {
            "PIN_VLLM": "0.11.0",
            "EXTRAS_VLLM": "flashinfer",
            "PIN_NIXL": "0.7.1",
            "EXTRAS_NIXL": "cu12",
        },
        "labels": GOOD_LABELS,
        "pins": {"vllm": "0.11.0", "nixl": "0.7.1"},
    }
    values.update(changes)
    return FakeBuild(**values)


def test_image_plan_carries_the_pins(matrix: Matrix) -> None:
    checks = check_image_plan(matrix, builds=[_planned()])
    assert len(checks) == 2 * 3 + 2 + 2  # pins x (plan, arg, label), extras, labels
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    wrong = _planned(
        args={"PIN_VLLM": "0.10.2", "EXTRAS_VLLM": "", "PIN_NIXL": "0.7.1", "EXTRAS_NIXL": "cu13"},
        labels={**GOOD_LABELS, "org.buildmatrix.release": "v0.7.0"},
    )
    failed = [
        (c.name, c.detail.split(" (")[0], c.found)
        for c in check_image_plan(matrix, builds=[wrong])
        if not c.ok
    ]
    assert failed == [
        ("vllm", "build arg PIN_*", "0.10.2"),
        ("vllm", "build arg EXTRAS_*", "(no extras)"),
        ("nixl", "build arg EXTRAS_*", "cu13"),
        ("org.buildmatrix.release", "label", "v0.7.0"),
    ]
    [unknown] = check_image_plan(matrix, builds=[_planned(release="v9.9")])
    assert not unknown.ok


def test_the_real_image_plan_agrees_when_present(matrix: Matrix) -> None:
    """With the images command in the checkout, its plan for every release carries the pins."""
    try:
        import buildmatrix.images.plan  # noqa: F401
    except ModuleNotFoundError:
        assert check_image_plan(matrix) == []
        return
    checks = check_image_plan(matrix)
    assert len(checks) >= len(matrix.releases) * len(matrix.frameworks) * 8
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.slow
def test_cli_takes_a_folder_of_wheels(tmp_path: Path, cli: Callable[..., Any]) -> None:
    from buildmatrix import docs

    path = _repo_with_meta_pyproject(tmp_path / "repo", MAIN_EXTRAS, "0.8.0.dev0")
    (tmp_path / "repo" / "docs").mkdir()
    (tmp_path / "repo" / "docs" / "support-matrix.md").write_text(docs.render(load_matrix(path)))
    wheel = build_meta_wheel(tmp_path, "0.7.1", RIGHT_EXTRAS)
    result = cli("verify", "--matrix", path, "--wheel", wheel.parent, "--format", "json")
    assert result.code == 0, result.out
    subjects = {c["subject"] for c in json.loads(result.out)["checks"]}
    assert str(wheel) in subjects


@pytest.mark.slow
def test_wheels_of_other_releases_fail_naming_their_release(tmp_path: Path, matrix: Matrix) -> None:
    wheel = build_meta_wheel(tmp_path, "0.7.1", RIGHT_EXTRAS)
    report = run_verify(matrix, wheels=(wheel,), releases=(matrix.find_release("main"),))
    [check] = [c for c in report.checks if c.subject == str(wheel)]
    assert not check.ok
    assert check.detail == "the wheel belongs to release v0.7.1, not to the selected main"
    assert report.exit_code == 1


# --------------------------------------------------------------------------- index


class _IndexHandler(http.server.BaseHTTPRequestHandler):
    projects: ClassVar[dict[str, list[tuple[str, str | None]]]] = {}
    json_projects: ClassVar[frozenset[str]] = frozenset()
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        name = self.path.strip("/").split("/")[-1]
        files = self.projects.get(name)
        if not self.path.startswith("/simple/") or files is None:
            self.send_error(404)
            return
        if name in self.json_projects and "vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
            body = json.dumps(
                {
                    "meta": {"api-version": "1.1"},
                    "name": name,
                    "files": [
                        {"filename": f, "url": f"../../files/{f}", "hashes": {}, "yanked": y or False}
                        for f, y in files
                    ],
                }
            ).encode()
            content_type = "application/vnd.pypi.simple.v1+json"
        else:
            anchors = "".join(
                f'<a href="../../files/{f}#sha256=00"'
                + ("" if y is None else f' data-yanked="{y}"')
                + f">{f}</a><br/>\n"
                for f, y in files
            )
            body = f"<!DOCTYPE html><html><body>{anchors}</body></html>".encode()
            content_type = "text/html"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_index() -> Iterator[Callable[..., str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(projects: dict[str, list[tuple[str, str | None]]], json_projects: Sequence[str] = ()) -> str:
        handler = type(
            "Handler",
            (_IndexHandler,),
            {"projects": projects, "json_projects": frozenset(json_projects), "requests": []},
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/simple/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_check_index_finds_missing_and_yanked(local_index: Callable[..., str], matrix: Matrix) -> None:
    url = local_index(
        {
            # vllm as PEP 691 JSON, the others as PEP 503 HTML.
            "vllm": [("vllm-0.11.0-cp38-abi3-manylinux1_x86_64.whl", None), ("vllm-0.11.0.tar.gz", None)],
            "nixl": [("nixl-0.7.1-py3-none-any.whl", "broken CUDA 13 build"), ("nixl-0.7.0.tar.gz", None)],
            "sglang": [("sglang-0.5.3.post3-py3-none-any.whl", None)],
            "tensorrt-llm": [
                ("tensorrt_llm-1.2.0rc3-cp312-cp312-linux_x86_64.whl", None),
                ("tensorrt_llm-1.2.0rc3.tar.gz", "wrong"),  # one file yanked: version still fine
            ],
        },
        json_projects=["vllm"],
    )
    report = run_verify(matrix, check_index=True, index_url=url, releases=(matrix.find_release(RELEASE),))
    index_checks = {c.name: c for c in report.checks if c.subject == url}
    assert set(index_checks) == {"vllm", "nixl", "sglang", "tensorrt-llm"}
    assert index_checks["vllm"].ok
    assert index_checks["tensorrt-llm"].ok
    assert not index_checks["nixl"].ok
    assert index_checks["nixl"].found == "0.7.1 yanked"
    assert "broken CUDA 13 build" in index_checks["nixl"].detail
    assert not index_checks["sglang"].ok
    assert index_checks["sglang"].found == "(missing)"
    assert "0.5.3.post3" in index_checks["sglang"].detail


def test_extra_index_urls_are_a_union(local_index: Callable[..., str]) -> None:
    first = local_index({"vllm": [("vllm-0.11.0.tar.gz", None)]})
    second = local_index({"vllm": [("vllm-0.12.0.tar.gz", None)], "nixl": [("nixl-0.7.1.tar.gz", None)]})
    client = SimpleIndexClient(IndexConfig(index_url=first, extra_index_urls=(second,)))
    vllm = client.project("VLLM")
    assert vllm.exists(Version("0.11.0"))
    assert vllm.exists(Version("0.12.0"))
    assert vllm.found_on == (first, second)
    assert client.project("nixl").found_on == (second,)
    assert not client.project("sglang").files


def test_index_config_follows_pip(tmp_path: Path) -> None:
    assert index_config("https://a/simple", ["https://b/simple"]).urls == (
        "https://a/simple",
        "https://b/simple",
    )
    env = {"PIP_INDEX_URL": "https://env/simple", "PIP_EXTRA_INDEX_URL": "https://x https://y"}
    assert index_config(environ=env).urls == ("https://env/simple", "https://x", "https://y")
    config = {
        "global.index-url": "https://global/simple",
        "install.index-url": "https://install/simple",
        "global.extra-index-url": "file:///opt/pypi/simple file:///opt/more",
    }
    assert index_config(environ={}, pip_config=config).urls == (
        "https://install/simple",
        "file:///opt/pypi/simple",
        "file:///opt/more",
    )
    assert index_config(environ={}, pip_config={}).urls == ("https://pypi.org/simple/",)


def test_file_index_like_pip(tmp_path: Path) -> None:
    page = tmp_path / "simple" / "nixl" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        '<a href="../../files/nixl-0.7.1-py3-none-any.whl" data-yanked>nixl-0.7.1-py3-none-any.whl</a>'
    )
    client = SimpleIndexClient(IndexConfig(index_url=(tmp_path / "simple").as_uri()))
    nixl = client.project("nixl")
    assert nixl.exists(Version("0.7.1"))
    assert nixl.yanked_reason(Version("0.7.1")) == ""
    assert not client.project("vllm").files


def test_unreachable_index_is_exit_2(matrix: Matrix) -> None:
    report = run_verify(
        matrix, check_index=True, index_url="http://127.0.0.1:9/simple/", releases=(matrix.releases[0],)
    )
    assert report.exit_code == 2
    assert any("unreachable" in error for error in report.errors)


@pytest.mark.network
def test_real_pypi(matrix: Matrix) -> None:
    """vLLM 0.11.0 is on PyPI; sglang 0.5.3.post4 (v0.7.x's pin) was never published."""
    report = run_verify(
        matrix,
        check_index=True,
        index_url="https://pypi.org/simple/",
        releases=(matrix.find_release(RELEASE),),
    )
    checks = {c.name: c for c in report.checks if c.subject == "https://pypi.org/simple/"}
    assert checks["vllm"].ok
    assert checks["vllm"].found == "0.11.0"
    assert not checks["sglang"].ok
    assert checks["sglang"].found == "(missing)"


# --------------------------------------------------------------------------- CLI


def test_cli_json_and_exit_codes(tmp_path: Path, cli: Callable[..., Any]) -> None:
    from buildmatrix import docs

    path = _repo_with_meta_pyproject(tmp_path / "repo", MAIN_EXTRAS, "0.8.0.dev0")
    (tmp_path / "repo" / "docs").mkdir()
    (tmp_path / "repo" / "docs" / "support-matrix.md").write_text(docs.render(load_matrix(path)))
    good = write_oci_layout(tmp_path / "good", good_spec())
    result = cli("verify", "--matrix", path, "--image", good, "--format", "json")
    document = json.loads(result.out)
    assert set(document["checks"][0]) == {"subject", "name", "expected", "found", "ok", "detail"}
    assert [c for c in document["checks"] if not c["ok"]] == []
    assert document["summary"] == {
        "artifacts": 1,
        "checks": len(document["checks"]),
        "failed": 0,
        "errors": 0,
        "ok": True,
    }
    assert result.code == 0
    bad = write_oci_layout(
        tmp_path / "bad", good_spec(labels={**GOOD_LABELS, "org.buildmatrix.pin.nixl": "0.8.0"})
    )
    result = cli("verify", "--matrix", path, "--image", bad)
    assert result.code == 1
    assert "FAIL" in result.out
    assert "verify: 1 of" in result.out
    result = cli("verify", "--matrix", path, "--image", tmp_path / "nope.tar", "--format", "json")
    assert result.code == 2
    assert "nope.tar" in json.loads(result.out)["errors"][0]
    result = cli("verify", "--matrix", path, "--release", "v9.9")
    assert result.code == 2


@pytest.mark.network
def test_published_meta_wheel(tmp_path: Path, matrix: Matrix) -> None:
    """The real ai-dynamo 0.7.1 wheel: its extras pin vLLM and TensorRT-LLM as the matrix
    does, but its SGLang extra pins 0.5.4.post3 where the reference says 0.5.3.post4, and
    every extra also requires uvloop, which the matrix does not generate."""
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"),
            *("--index-url", "https://pypi.org/simple/", "--dest", str(tmp_path), "ai-dynamo==0.7.1"),
        ],
        check=True,
    )
    [wheel] = tmp_path.glob("ai_dynamo-0.7.1-*.whl")
    report = run_verify(matrix, wheels=(wheel,))
    by_extra: dict[str, set[bool]] = {}
    for check in report.checks:
        if check.subject == str(wheel) and check.detail.startswith("extra"):
            by_extra.setdefault(check.detail.split("'")[1], set()).add(check.ok)
    assert by_extra == {"vllm": {True, False}, "sglang": {True, False}, "trtllm": {True, False}}
    failed = {(c.name, c.detail.split(":")[0]) for c in report.checks if not c.ok and c.subject == str(wheel)}
    assert failed == {
        ("sglang", "extra 'sglang'"),
        ("uvloop", "extra 'sglang'"),
        ("uvloop", "extra 'trtllm'"),
        ("uvloop", "extra 'vllm'"),
    }


# --------------------------------------------------------------------------- buildah storage


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


# --------------------------------------------------------------------------- end to end


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
