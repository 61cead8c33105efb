"""Read files out of a container image without running it and without extracting it.

Sources: an OCI image layout directory, an OCI archive (``buildah push IMG
oci-archive:x.tar``), a ``docker save`` tarball, an image in local
buildah/podman storage (copied to a temporary OCI layout with ``buildah push``,
or ``buildah manifest push --all`` for a manifest list, so every platform comes),
or an image in a registry (``docker://HOST/REPO:TAG``, read through the OCI
distribution API by ``buildmatrix.layers.registry``, never copied to disk).

Every blob is checked against the digest it is referenced by while it streams
(``buildmatrix.layers.digest``): manifests and configs when read, layers as the
scan reads them; a mismatch fails naming the blob.

An image becomes one ``ImageView`` per platform: its labels and its layers;
``ImageView.scan`` reads the layers (``buildmatrix.layers.scan``). Nothing is
written to disk except, for local storage, the temporary copy buildah makes;
digests and paths from manifests are validated before they become file names.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from buildmatrix.layers.digest import DigestReader, check_digest, parse_digest
from buildmatrix.layers.scan import (
    ImageError,
    Layer,
    ScanRequest,
    ScanResult,
    scan_layers,
)

__all__ = ["ImageView", "open_image"]

INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

_JSON_LIMIT = 16 * 1024 * 1024  # manifests and configs are kilobytes


class _Store:
    """Blobs of one image source, opened by their relative path (layouts, archives)."""

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def open_blob(self, digest: str, size: int | None, what: str) -> DigestReader:
        """The blob ``digest`` names, hashed as it is read."""
        return DigestReader(self.open(_blob_path(digest)), digest, what, size)

    def read_blob(self, digest: str, size: int | None, what: str) -> bytes:
        """A small blob (manifest, config), whole, after its digest is checked."""
        with self.open(_blob_path(digest)) as handle:
            data = handle.read(_JSON_LIMIT + 1)
        if len(data) > _JSON_LIMIT:
            msg = f"{what} {digest} is larger than {_JSON_LIMIT} bytes"
            raise ValueError(msg)
        return check_digest(data, digest, what, size)

    def read_manifest(self, digest: str, size: int | None) -> bytes:
        return self.read_blob(digest, size, "manifest")


class _DirectoryStore(_Store):
    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, name: str) -> IO[bytes]:
        return (self.root / _safe_relative(name)).open("rb")

    def exists(self, name: str) -> bool:
        return (self.root / _safe_relative(name)).is_file()


class _TarStore(_Store):
    """An OCI archive or docker-save tarball, read in place: members are seeked to."""

    def __init__(self, path: Path) -> None:
        self.archive = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by open_image
        self.members = {posixpath.normpath(m.name.lstrip("/")): m for m in self.archive.getmembers()}

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(posixpath.normpath(_safe_relative(name)))
        if member is None:
            raise FileNotFoundError(name)
        handle = self.archive.extractfile(member)
        if handle is None:
            raise FileNotFoundError(name)
        return handle

    def exists(self, name: str) -> bool:
        return posixpath.normpath(_safe_relative(name)) in self.members

    def close(self) -> None:
        self.archive.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageView:
    """One platform's image: labels from its config and its layers, bottom first."""

    reference: str  # as given by the user
    platform: str  # "linux/amd64", or "" when the source does not say
    labels: Mapping[str, str]
    layers: tuple[Layer, ...]
    _open_layer: Callable[[Layer], IO[bytes]] = field(repr=False, compare=False)
    # The manifest's and config's digests, both checked when read ("" when the
    # source has no such blob, e.g. the manifest of a docker-save tarball).
    manifest_digest: str = ""
    config_digest: str = ""

    @property
    def subject(self) -> str:
        return f"{self.reference} ({self.platform})" if self.platform else self.reference

    def scan(
        self, request: ScanRequest, *, on_layer: Callable[[int, Layer], None] | None = None
    ) -> ScanResult:
        """Stream the layers topmost first and collect what ``request`` asks for."""
        return scan_layers(self.reference, self.layers, self._open_layer, request, on_layer)


# --------------------------------------------------------------------------- opening


@contextmanager
def open_image(
    reference: str, *, platform: str | None = None, tls_verify: bool = True
) -> Iterator[tuple[ImageView, ...]]:
    """Every platform image ``reference`` names (one, or one per arch of an index).

    ``reference``: ``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``,
    ``docker-archive:FILE[:TAG]``, ``containers-storage:NAME``,
    ``docker://HOST/REPO[:TAG][@DIGEST]`` (a registry; ``tls_verify=False``
    accepts an unverified certificate or plain HTTP from a host other than
    localhost), a path to any of the first three (detected), or else an image
    name in local buildah storage.
    """
    with ExitStack() as stack:
        try:
            if reference.startswith("docker://"):
                from buildmatrix.layers.registry import open_registry_image

                store, descriptors = open_registry_image(reference, tls_verify=tls_verify, stack=stack)
                views = _views_of(reference, store, descriptors)
            else:
                views = _open(reference, platform, stack)
        except ImageError:
            raise
        except (OSError, tarfile.TarError, ValueError, KeyError, TypeError, AttributeError) as error:
            # AttributeError, TypeError: JSON of the wrong shape (a list where an object belongs).
            msg = f"cannot read image {reference!r}: {error}"
            raise ImageError(msg) from error
        if platform is not None:
            views = tuple(v for v in views if v.platform == platform)
            if not views:
                msg = f"image {reference!r} has no {platform} image"
                raise ImageError(msg)
        yield views


def _open(reference: str, platform: str | None, stack: ExitStack) -> tuple[ImageView, ...]:
    transport, _, rest = reference.partition(":")
    if transport in ("oci", "oci-archive", "docker-archive") and rest:
        path, tag = _split_tag(rest)
        if not path.exists():
            msg = f"image {reference!r}: {path} does not exist"
            raise ImageError(msg)
        if transport == "oci":
            return _read_oci(reference, _DirectoryStore(path), tag)
        store = _TarStore(path)
        stack.callback(store.close)
        if transport == "oci-archive":
            return _read_oci(reference, store, tag)
        return _read_docker_archive(reference, store, tag)
    if transport == "containers-storage" and rest:
        return _open_local_storage(reference, rest, stack)
    path = Path(reference)
    if path.is_dir():
        if not (path / "index.json").is_file():
            msg = f"image {reference!r}: {path} is a directory without index.json (not an OCI layout)"
            raise ImageError(msg)
        return _read_oci(reference, _DirectoryStore(path), None)
    if path.is_file():
        if not tarfile.is_tarfile(path):
            msg = f"image {reference!r}: {path} is not a tar archive (OCI archive or docker save)"
            raise ImageError(msg)
        store = _TarStore(path)
        stack.callback(store.close)
        if store.exists("index.json"):
            return _read_oci(reference, store, None)
        if store.exists("manifest.json"):
            return _read_docker_archive(reference, store, None)
        msg = f"image {reference!r}: {path} has neither index.json nor manifest.json"
        raise ImageError(msg)
    if "/" in reference and (reference.startswith((".", "/")) or reference.endswith(".tar")):
        msg = f"image {reference!r}: no such file or directory"
        raise ImageError(msg)
    return _open_local_storage(reference, reference, stack)


def _split_tag(rest: str) -> tuple[Path, str | None]:
    if Path(rest).exists():
        return Path(rest), None
    path, sep, tag = rest.rpartition(":")
    if sep and "/" not in tag and path:
        return Path(path), tag
    return Path(rest), None


def _open_local_storage(reference: str, name: str, stack: ExitStack) -> tuple[ImageView, ...]:
    """Copy the image out of buildah/podman storage into a temporary OCI layout.

    A manifest list (what ``buildah build --manifest`` makes) is copied with every
    platform; a plain image is copied with its layers left uncompressed.
    """
    from buildmatrix import _call
    from buildmatrix.errors import CommandFailedError

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="buildmatrix-image-")))
    layout = tmp / "layout"
    try:
        _call.call("buildah", "manifest", "push", "--quiet", "--all", name, f"oci:{layout}")
    except CommandFailedError as error:
        if "not a manifest list" not in error.stderr:
            msg = f"image {reference!r} is not in local buildah storage: {error.stderr.strip()}"
            raise ImageError(msg) from error
        shutil.rmtree(layout, ignore_errors=True)
        try:
            _call.call("buildah", "push", "--quiet", "--disable-compression", name, f"oci:{layout}")
        except CommandFailedError as second:
            msg = f"image {reference!r} is not in local buildah storage: {second.stderr.strip()}"
            raise ImageError(msg) from second
    return _read_oci(reference, _DirectoryStore(layout), None)


def _read_json(store: _Store, name: str) -> Any:
    return json.loads(_read_json_bytes(store, name))


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    document = json.loads(data)
    if not isinstance(document, dict):
        msg = f"{what} is not a JSON object"
        raise ValueError(msg)
    return document


def _blob_path(digest: str) -> str:
    # The digest becomes a path: only a registered algorithm and its hex are acceptable.
    algorithm, encoded = parse_digest(digest)
    return f"blobs/{algorithm}/{encoded}"


def _size(descriptor: Mapping[str, Any]) -> int | None:
    size = descriptor.get("size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        msg = f"descriptor {descriptor.get('digest')}: invalid size {size!r}"
        raise ValueError(msg)
    return size


def _read_oci(reference: str, store: _Store, tag: str | None) -> tuple[ImageView, ...]:
    index = _read_json(store, "index.json")
    descriptors = list(index.get("manifests", []))
    if tag is not None:
        descriptors = [d for d in descriptors if d.get("annotations", {}).get(REF_NAME_ANNOTATION) == tag]
        if not descriptors:
            msg = f"image {reference!r}: no manifest tagged {tag!r} in index.json"
            raise ImageError(msg)
    return _views_of(reference, store, descriptors, where="index.json")


def _views_of(
    reference: str, store: _Store, descriptors: list[dict[str, Any]], where: str = "the registry"
) -> tuple[ImageView, ...]:
    views: list[ImageView] = []
    _collect_manifests(reference, store, descriptors, views, depth=0)
    if not views:
        msg = f"image {reference!r}: {where} names no image manifest"
        raise ImageError(msg)
    return tuple(views)


def _collect_manifests(
    reference: str,
    store: _Store,
    descriptors: list[dict[str, Any]],
    views: list[ImageView],
    depth: int,
) -> None:
    if depth > 4:
        msg = f"image {reference!r}: image indexes nested too deep"
        raise ImageError(msg)
    for descriptor in descriptors:
        media_type = descriptor.get("mediaType", "")
        platform = descriptor.get("platform") or {}
        if platform.get("os") == "unknown":
            continue  # BuildKit attestation manifests
        manifest_digest = str(descriptor["digest"])
        document = _json_object(
            store.read_manifest(manifest_digest, _size(descriptor)), f"manifest {manifest_digest}"
        )
        media_type = media_type or document.get("mediaType", "")
        if media_type in INDEX_MEDIA_TYPES or "manifests" in document:
            _collect_manifests(reference, store, document["manifests"], views, depth + 1)
            continue
        config_descriptor = document["config"]
        config_digest = str(config_descriptor["digest"])
        config = _json_object(
            store.read_blob(config_digest, _size(config_descriptor), "config"), f"config {config_digest}"
        )
        layers = tuple(
            Layer(name=str(layer["digest"]), media_type=layer.get("mediaType", ""), size=_size(layer))
            for layer in document.get("layers", [])
        )
        for layer in layers:
            parse_digest(layer.name)  # before anything is read
        views.append(
            ImageView(
                reference=reference,
                platform=_platform(platform) or _platform(config),
                labels=_labels(config),
                layers=layers,
                _open_layer=lambda layer, store=store: store.open_blob(layer.name, layer.size, "layer"),  # type: ignore[misc]
                manifest_digest=manifest_digest,
                config_digest=config_digest,
            )
        )


def _read_docker_archive(reference: str, store: _Store, tag: str | None) -> tuple[ImageView, ...]:
    entries = _read_json(store, "manifest.json")
    if tag is not None:
        entries = [
            e for e in entries if any(t.endswith(":" + tag) or t == tag for t in e.get("RepoTags") or [])
        ]
        if not entries:
            msg = f"image {reference!r}: no image tagged {tag!r} in manifest.json"
            raise ImageError(msg)
    views = []
    for entry in entries:
        # docker save names the config by its digest (the image ID) and lists the
        # layers' digests as the config's diff_ids (its layers are uncompressed tars).
        config_name = str(entry["Config"])
        config_digest = _docker_archive_digest(config_name)
        if config_digest is None:
            msg = f"image {reference!r}: config {config_name!r} is not named by its digest"
            raise ImageError(msg)
        config = _json_object(
            check_digest(_read_json_bytes(store, config_name), config_digest, "config"),
            f"config {config_digest}",
        )
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(entry["Layers"]):
            msg = (
                f"image {reference!r}: manifest.json lists {len(entry['Layers'])} layers, "
                f"the config's rootfs.diff_ids {len(diff_ids)}"
            )
            raise ImageError(msg)
        layers = tuple(Layer(name=name, media_type="", size=None) for name in entry["Layers"])
        expected = {}
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            _safe_relative(layer.name)
            # A layer stored as blobs/sha256/<hex> (docker 25+) is named by its digest.
            expected[layer.name] = _docker_archive_digest(layer.name) or str(diff_id)
            parse_digest(expected[layer.name])
        views.append(
            ImageView(
                reference=reference,
                platform=_platform(config),
                labels=_labels(config),
                layers=layers,
                _open_layer=_docker_archive_opener(store, expected),
                config_digest=config_digest,
            )
        )
    return tuple(views)


def _docker_archive_opener(store: _Store, expected: Mapping[str, str]) -> Callable[[Layer], IO[bytes]]:
    def open_layer(layer: Layer) -> IO[bytes]:
        return DigestReader(  # type: ignore[return-value]
            store.open(layer.name), expected[layer.name], f"layer {layer.name}"
        )

    return open_layer


def _read_json_bytes(store: _Store, name: str) -> bytes:
    with store.open(name) as handle:
        data = handle.read(_JSON_LIMIT + 1)
    if len(data) > _JSON_LIMIT:
        msg = f"{name} is larger than {_JSON_LIMIT} bytes"
        raise ValueError(msg)
    return data


def _docker_archive_digest(name: str) -> str | None:
    """``sha256:<hex>`` when a docker-save member is named by its digest, else None."""
    stem = posixpath.basename(name).removesuffix(".json")
    # (A legacy ``<id>/layer.tar``'s id is not the layer's digest: its diff_id is.)
    if len(stem) == 64 and set(stem) <= set("0123456789abcdef"):
        return f"sha256:{stem}"
    return None


def _platform(data: Mapping[str, Any]) -> str:
    if not data.get("os") or not data.get("architecture"):
        return ""
    result = f"{data['os']}/{data['architecture']}"
    return f"{result}/{data['variant']}" if data.get("variant") else result


def _labels(config: Mapping[str, Any]) -> dict[str, str]:
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _safe_relative(name: str) -> str:
    """A path inside the layout or archive; never absolute, never climbing out."""
    normalized = posixpath.normpath(name)
    if name.startswith("/") or normalized == ".." or normalized.startswith("../"):
        msg = f"unsafe path {name!r} in image metadata"
        raise ValueError(msg)
    return normalized
