"""Images for the tests: OCI layouts, OCI archives and docker-save tarballs written from
layer entries (gzip/zstd/plain layers), with the labels and pins file of v0.7.1's vLLM image.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

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


def _manifest(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]
