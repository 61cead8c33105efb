"""Scan an image's layers for what verify needs, without extracting anything.

Layers are read topmost first through ``buildmatrix.layers.stream`` (forward only,
gzip, zstd or plain) with overlay semantics, as a container sees them: the first
time a path is seen it is the file the container would see; whiteouts
(``.wh.NAME``, opaque ``.wh..wh..opq``) hide what lower layers hold, and so does
a file or symlink that replaces a directory, from the layer below theirs on. A
scan stops as soon as everything it asked for is found, unless it must count
library copies, which needs every layer; the layers it never read are named in
the result. A layer opened as a digest-checked stream (``layers.digest``) is
hashed to its end even when the scan needs only its first entries, and a
mismatch fails the scan naming the blob. Entries with ``..`` components are
never used and are reported.
"""

from __future__ import annotations

import email.parser
import fnmatch
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import UsageError
from buildmatrix.layers.stream import open_layer_stream
from buildmatrix.layers.tarstream import TarEntry, TarStream

__all__ = [
    "ImageError",
    "InstalledDistribution",
    "Layer",
    "ScanRequest",
    "ScanResult",
    "scan_layers",
]

_WHITEOUT_PREFIX = ".wh."
_OPAQUE_WHITEOUT = ".wh..wh..opq"
_SITE_DIRS = frozenset({"site-packages", "dist-packages"})
# METADATA headers come first; the long description after them is never needed.
_METADATA_HEAD_BYTES = 64 * 1024


class ImageError(UsageError):
    """The image cannot be found or read (exit 2): names the image and the problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    name: str  # the digest, or the path inside a docker-save tarball
    media_type: str
    size: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanRequest:
    """What to look for in an image's file system."""

    distributions: frozenset[NormalizedName] = frozenset()
    # Collected when seen, but the scan does not wait for them (may be absent).
    optional_distributions: frozenset[NormalizedName] = frozenset()
    files: frozenset[str] = frozenset()  # absolute paths, "/opt/buildmatrix/pins.json"
    # Basename patterns of libraries to count; counting needs every layer.
    library_patterns: tuple[str, ...] = ()
    max_file_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class InstalledDistribution:
    name: NormalizedName
    version: Version
    path: str  # "/usr/local/lib/python3.12/dist-packages/vllm-0.11.0.dist-info"
    layer: int  # index of the layer it comes from, 0 = the base layer


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanResult:
    distributions: Mapping[NormalizedName, tuple[InstalledDistribution, ...]]
    files: Mapping[str, bytes]
    libraries: tuple[str, ...]  # regular files matching library_patterns, visible ones
    unsafe_paths: tuple[str, ...]  # entries with ".." or absolute link targets, never used
    problems: tuple[str, ...]  # e.g. a requested file that is too big
    layers_read: int
    layers_total: int
    complete: bool  # every layer was read to its end
    # Layers the scan never opened (it found everything above them): their names.
    layers_skipped: tuple[str, ...] = ()
    blobs_verified: int = 0  # layers whose bytes were checked against their digest


def scan_layers(
    reference: str,
    layers: tuple[Layer, ...],
    open_layer: Callable[[Layer], IO[bytes]],
    request: ScanRequest,
    on_layer: Callable[[int, Layer], None] | None = None,
) -> ScanResult:
    """Stream ``layers`` (bottom first, as in the manifest) topmost first for ``request``."""
    return _Scanner(reference, layers, open_layer, request).run(on_layer)


def _entry_path(name: str) -> str | None:
    """The entry's absolute path, or None when a component is ``..``."""
    stripped = name.lstrip("/")
    if ".." in stripped.split("/"):
        return None
    normalized = posixpath.normpath(stripped)
    return "/" if normalized == "." else "/" + normalized


@dataclass(slots=True)
class _LayerChanges:
    """What one layer hides from the layers below it (applied once it is read)."""

    hidden: set[str] = field(default_factory=set)  # whiteouts
    opaque: set[str] = field(default_factory=set)  # opaque directories
    # Non-directories, by hash(path): an int costs a third of a path's memory, which
    # matters for layers of 100,000s of files. A collision could only hide lower
    # content, which whoever writes a layer can do anyway with a whiteout.
    blocked: set[int] = field(default_factory=set)


class _Scanner:
    def __init__(
        self,
        reference: str,
        layers: tuple[Layer, ...],
        open_layer: Callable[[Layer], IO[bytes]],
        request: ScanRequest,
    ) -> None:
        self.reference = reference
        self.layers = layers
        self.open_layer = open_layer
        self.request = request
        self.files_wanted = {"/" + posixpath.normpath(f.lstrip("/")) for f in request.files}
        self.wanted_distributions = request.distributions | request.optional_distributions
        # One compiled pattern for every library glob: this runs for every entry.
        self.library_pattern = (
            re.compile("|".join(fnmatch.translate(p) for p in request.library_patterns))
            if request.library_patterns
            else None
        )
        self.distributions: dict[NormalizedName, list[InstalledDistribution]] = {}
        self.files: dict[str, bytes] = {}
        self.libraries: list[str] = []
        self.unsafe: list[str] = []
        self.problems: list[str] = []
        # Paths resolved by an upper layer (for the paths this scan cares about).
        self.seen: set[str] = set()
        self.hidden: set[str] = set()  # whited out for every lower layer
        self.opaque: set[str] = set()  # directories whose lower-layer content is hidden
        # Non-directories of upper layers: a lower layer's entries below one are hidden
        # (a file or symlink that replaces a directory hides its old content).
        self.blocked: set[int] = set()
        self.directory_cache: dict[str, bool] = {}
        self.blobs_verified = 0

    def done(self) -> bool:
        if self.request.library_patterns:
            return False
        return self.files_wanted <= self.files.keys() and self.request.distributions <= (
            self.distributions.keys()
        )

    def run(self, on_layer: Callable[[int, Layer], None] | None) -> ScanResult:
        total = len(self.layers)
        read = 0
        complete = True
        skipped: list[str] = []
        for index in range(total - 1, -1, -1):
            if self.done():
                complete = False
                skipped = [layer.name for layer in self.layers[: index + 1]]
                break
            layer = self.layers[index]
            if on_layer is not None:
                on_layer(index, layer)
            read += 1
            stopped_early = self._scan_layer(index, layer)
            if stopped_early:
                complete = False
                skipped = [layer.name for layer in self.layers[:index]]
                break
        return ScanResult(
            distributions={k: tuple(v) for k, v in sorted(self.distributions.items())},
            files=dict(self.files),
            libraries=tuple(self.libraries),
            unsafe_paths=tuple(self.unsafe),
            problems=tuple(self.problems),
            layers_read=read,
            layers_total=total,
            complete=complete,
            layers_skipped=tuple(skipped),
            blobs_verified=self.blobs_verified,
        )

    def _hidden(self, path: str) -> bool:
        if not self.hidden and not self.opaque and not self.blocked:
            return False  # the topmost layer
        if path in self.hidden:
            return True
        return self._directory_hidden(path.rpartition("/")[0] or "/")

    def _directory_hidden(self, directory: str) -> bool:
        """Whether an upper layer hides what this layer has under ``directory``.

        Memoized per layer (the sets change only between layers): a layer holds
        thousands of files in the same few directories.
        """
        known = self.directory_cache.get(directory)
        if known is not None:
            return known
        hidden = directory in self.hidden or directory in self.opaque or hash(directory) in self.blocked
        if not hidden and directory != "/":
            hidden = self._directory_hidden(directory.rpartition("/")[0] or "/")
        self.directory_cache[directory] = hidden
        return hidden

    def _scan_layer(self, index: int, layer: Layer) -> bool:
        """Read one layer; True when the scan found everything before its end."""
        changes = _LayerChanges()
        stopped_early = False
        with self.open_layer(layer) as raw:
            # A digest-checked blob (layers.digest.DigestReader) is verified to its end,
            # also when the scan stops early or the layer does not decode: a mismatch is
            # the error that counts, and nothing read from the blob is trusted before it.
            verify: Callable[[], None] | None = getattr(raw, "verify", None)
            try:
                archive = TarStream(open_layer_stream(raw))
                for member in archive:
                    if self._visit(index, archive, member, changes):
                        stopped_early = True
                        break
            except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as error:
                if verify is not None:
                    verify()
                msg = f"cannot read image {self.reference!r}: layer {layer.name}: {error}"
                raise ImageError(msg) from error
            if verify is not None:
                verify()
                self.blobs_verified += 1
        # A layer's whiteouts and files hide only what lies below it, so they apply afterwards.
        self.hidden |= changes.hidden
        self.opaque |= changes.opaque
        self.blocked |= changes.blocked
        self.directory_cache.clear()
        return stopped_early

    def _visit(
        self,
        index: int,
        archive: TarStream,
        member: TarEntry,
        changes: _LayerChanges,
    ) -> bool:
        path = _entry_path(member.name)
        if path is None or (member.islnk() and _entry_path(member.linkname) is None):
            self.unsafe.append(member.name if path is None else f"{member.name} -> {member.linkname}")
            return False
        directory, base = posixpath.split(path)
        if base == _OPAQUE_WHITEOUT:
            changes.opaque.add(directory)
            return False
        if base.startswith(_WHITEOUT_PREFIX):
            changes.hidden.add(posixpath.join(directory, base[len(_WHITEOUT_PREFIX) :]))
            return False
        if self._hidden(path):
            return False
        if index and not member.isdir():  # (nothing lies below the base layer)
            changes.blocked.add(hash(path))
        if self.library_pattern is not None and self.library_pattern.match(base):
            if path not in self.seen and member.isfile():
                self.libraries.append(path)
            self.seen.add(path)
        elif path in self.files_wanted:
            if path not in self.seen:
                self.seen.add(path)
                self._read_file(archive, member, path)
                return self.done()
        elif base == "METADATA" and member.isfile() and path not in self.seen:
            self.seen.add(path)
            dist_info = posixpath.dirname(path)
            if (
                dist_info.endswith(".dist-info")
                and posixpath.basename(posixpath.dirname(dist_info)) in _SITE_DIRS
            ):
                self._read_metadata(index, archive, member, dist_info)
                return self.done()
        return False

    def _read_file(self, archive: TarStream, member: TarEntry, path: str) -> None:
        if not member.isfile():
            self.problems.append(f"{path} is not a regular file in the image")
            return
        if member.size > self.request.max_file_bytes:
            self.problems.append(f"{path} is {member.size} bytes, over the limit")
            return
        self.files[path] = archive.read(member.size)

    def _read_metadata(self, index: int, archive: TarStream, member: TarEntry, dist_info: str) -> None:
        head = archive.read(_METADATA_HEAD_BYTES).decode("utf-8", errors="replace")
        headers = email.parser.HeaderParser().parsestr(head, headersonly=True)
        raw_name, raw_version = headers.get("Name"), headers.get("Version")
        if not raw_name or not raw_version:
            self.problems.append(f"{dist_info}/METADATA has no Name or Version")
            return
        name = canonicalize_name(raw_name)
        if name not in self.wanted_distributions:
            return
        try:
            version = Version(raw_version)
        except InvalidVersion:
            self.problems.append(f"{dist_info}/METADATA: invalid version {raw_version!r}")
            return
        self.distributions.setdefault(name, []).append(
            InstalledDistribution(name=name, version=version, path=dist_info, layer=index)
        )
