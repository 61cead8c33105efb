"""The typed model of matrix.toml: frozen dataclasses, built only by ``buildmatrix.loader``.

Every version here is a ``packaging.version.Version`` and every distribution
name is canonical (``packaging.utils.canonicalize_name``), so the rest of the
toolkit never parses or compares a version string itself.

A plain field added to a table's dataclass here (``str``, ``bool``, ``int``,
``datetime.date``, ``Version``, a ``StrEnum``, or one of these ``| None``) is read
from matrix.toml by its type, required unless it has a default, with no change
to the reader (``Section.record``); a field that needs its own check is also
read by the table's reader in ``buildmatrix.matrixfile``.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

__all__ = [
    "Arch",
    "BuildSupport",
    "BuildSupportItem",
    "CloudPlatform",
    "Dependency",
    "Framework",
    "GpuArch",
    "ImageSpec",
    "InstallIndex",
    "InstallsConfig",
    "Matrix",
    "Note",
    "OperatingSystem",
    "Release",
    "ReleaseStatus",
    "Rule",
    "RuntimePackage",
    "Status",
    "WheelKind",
    "WheelPackage",
]


class Status(enum.StrEnum):
    SUPPORTED = "Supported"
    EXPERIMENTAL = "Experimental"


class ReleaseStatus(enum.StrEnum):
    DEVELOPMENT = "development"  # main / top of tree
    UNRELEASED = "unreleased"  # planned, not yet published
    RELEASED = "released"


class WheelKind(enum.StrEnum):
    PURE = "pure"
    NATIVE = "native"


@dataclass(frozen=True, slots=True, kw_only=True)
class Arch:
    name: str  # "x86_64" | "aarch64": the wheel-tag spelling
    platform: str  # "linux/amd64": the OCI spelling
    display: str  # "ARM64": as the docs table shows it
    status: Status

    @property
    def docker_arch(self) -> str:
        """BuildKit's TARGETARCH for this arch (``amd64``, ``arm64``)."""
        return self.platform.split("/", 1)[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuArch:
    name: str  # "Hopper"
    display: str  # "NVIDIA Hopper Architecture"
    sm: tuple[str, ...]  # CUDA compute capabilities, "9.0"
    status: Status


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatingSystem:
    id: str  # "ubuntu-24.04": what rules name
    name: str  # "Ubuntu"
    version: str  # "24.04"
    arch: str  # an Arch.name
    status: Status
    glibc: Version | None = None  # the glibc the OS ships: `buildmatrix installs` targets it


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudPlatform:
    provider: str  # "AWS"
    os: str  # "Amazon Linux"
    version: str
    arch: str
    status: Status
    footnote: str = ""  # marker shown after the status, explained by a note
    glibc: Version | None = None  # the glibc the OS ships: `buildmatrix installs` targets it


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimePackage:
    """A row of the runtime dependency table: what users install and its floors."""

    name: NormalizedName
    display: str
    version: Version
    glibc: Version  # the minimum glibc the wheels are documented to need
    cuda: Version | None = None
    remark: str = ""  # e.g. "Python 3.12 has known issues"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    """A build dependency pinned per release (SGLang, TensorRT-LLM, vLLM, NIXL)."""

    name: NormalizedName  # canonical distribution name: the pins' key
    display: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Framework:
    """An inference framework with its extra on the meta package and its image."""

    name: str  # "vllm" | "sglang" | "trtllm"
    display: str  # "vLLM"
    distribution: NormalizedName  # the pin that is "the framework"
    extra: str  # the meta package's extra, "vllm"
    # Requirement templates of that extra; "{vllm}" is replaced by the release's pin.
    requires: tuple[str, ...]
    # Templates of what the runtime image installs besides the extra (NIXL for
    # TensorRT-LLM, whose published extra does not name it).
    image_requires: tuple[str, ...] = ()

    def requirements(self, pins: Mapping[NormalizedName, Version]) -> tuple[Requirement, ...]:
        """The extra's requirements for one release, as parsed ``Requirement`` objects."""
        return _fill(self.requires, pins)

    def image_requirements(self, pins: Mapping[NormalizedName, Version]) -> tuple[Requirement, ...]:
        """What the framework's runtime image installs: the extra and ``image_requires``."""
        return self.requirements(pins) + _fill(self.image_requires, pins)


def _fill(templates: tuple[str, ...], pins: Mapping[NormalizedName, Version]) -> tuple[Requirement, ...]:
    values = {str(name): str(version) for name, version in pins.items()}
    return tuple(Requirement(template.format_map(values)) for template in templates)


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    name: str  # "v0.7.1" | "main": as the reference spells it
    display: str  # "main (ToT)", "v0.8.0 (unreleased)": the docs column header
    version: Version  # the version the toolkit's own artifacts get
    status: ReleaseStatus
    planned: datetime.date | None
    pins: Mapping[NormalizedName, Version]
    cuda: Mapping[str, Version]  # framework name -> CUDA version
    # The release whose CUDA table this one reuses, when the reference gives
    # none for it; None when the values are stated for this release itself.
    cuda_inherited_from: str | None = None

    @property
    def is_published(self) -> bool:
        return self.status is ReleaseStatus.RELEASED


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelPackage:
    name: NormalizedName  # "ai-dynamo-runtime"
    kind: WheelKind
    source: Path  # absolute path to the package folder (pyproject.toml inside)
    python: tuple[str, ...]  # "3.12" form, ascending
    arch: tuple[str, ...]  # Arch.name values this package is built for
    policy: str  # "manylinux_2_28"; for pure wheels the floor of what they require
    abi3: bool  # one wheel per arch serves every listed Python
    # Sonames the package may need without bundling them (fnmatch patterns);
    # they are excluded from `auditwheel repair` and allowed by the audit.
    external_libs: tuple[str, ...] = ()
    # True for the meta package: its extras are generated from the frameworks.
    meta: bool = False
    # The runtime package the meta package requires at the release's own version.
    requires_runtime: NormalizedName | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSpec:
    framework: str  # Framework.name
    name: str  # "vllm-runtime": the repository name under --tag-prefix
    dockerfile: Path  # absolute
    target: str  # the Dockerfile stage to build
    python: str  # "3.12"
    os: str  # OperatingSystem.id of the base image
    arch: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A constraint between target attributes, applied during expansion.

    A target the rule applies to (every ``when`` attribute matches) is kept only
    if each ``allow`` attribute it has is in the allowed values, and no
    ``forbid`` attribute it has is in the forbidden values.
    """

    id: str
    when: Mapping[str, tuple[str, ...]]
    allow: Mapping[str, tuple[str, ...]]
    forbid: Mapping[str, tuple[str, ...]]
    message: str  # shown in the docs as a note/caution
    admonition: str = "Caution"  # Note | Caution | Important | Warning
    section: str = "platform"  # where the docs page shows the message

    def applies_to(self, attributes: Mapping[str, str]) -> bool:
        return all(attributes.get(key) in values for key, values in self.when.items())

    def permits(self, attributes: Mapping[str, str]) -> bool:
        if not self.applies_to(attributes):
            return True
        for key, values in self.allow.items():
            if key in attributes and attributes[key] not in values:
                return False
        return not any(key in attributes and attributes[key] in values for key, values in self.forbid.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """Free-text note of the reference, kept as data for the docs page."""

    section: str
    admonition: str  # Note | Caution | Important | Warning
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildSupportItem:
    name: str
    url: str
    remark: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildSupport:
    title: str
    description: str
    items: tuple[BuildSupportItem, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallIndex:
    """A package index `buildmatrix installs` resolves from, for some extras and arches."""

    url: str
    extras: tuple[str, ...] = ()  # framework extras it serves; empty: every extra
    arch: tuple[str, ...] = ()  # Arch.name values it serves; empty: every arch


@dataclass(frozen=True, slots=True, kw_only=True)
class InstallsConfig:
    """``[installs]``: where `buildmatrix installs` resolves from and writes its results."""

    indexes: tuple[InstallIndex, ...]  # the first that applies is the primary index
    results: Path  # absolute: the committed results the docs page and verify read

    def indexes_for(self, extra: str, arch: str) -> tuple[str, ...]:
        return tuple(
            index.url
            for index in self.indexes
            if (not index.extras or extra in index.extras) and (not index.arch or arch in index.arch)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Matrix:
    path: Path  # the matrix.toml this was read from
    project: str
    source_url: str
    archs: tuple[Arch, ...]
    gpus: tuple[GpuArch, ...]
    operating_systems: tuple[OperatingSystem, ...]
    clouds: tuple[CloudPlatform, ...]
    runtime_packages: tuple[RuntimePackage, ...]
    dependencies: tuple[Dependency, ...]
    frameworks: tuple[Framework, ...]
    releases: tuple[Release, ...]  # in the reference's column order, newest first
    wheels: tuple[WheelPackage, ...]
    images: tuple[ImageSpec, ...]
    rules: tuple[Rule, ...]
    notes: tuple[Note, ...]
    build_support: tuple[BuildSupport, ...]
    manylinux_images: Mapping[str, str]  # arch -> pinned manylinux_2_28 image
    cuda_base_images: Mapping[str, str]  # "12.8" -> pinned CUDA runtime base image
    # [runners.<kind>]: job kind (wheel, image) -> arch -> GitHub Actions runner labels
    runners: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    installs: InstallsConfig | None = None  # `[installs]`: the live-index installability check
    _release_index: Mapping[str, Release] = field(default_factory=dict, repr=False, compare=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def wheelhouse(self) -> Path:
        """Where `buildmatrix wheels` publishes by default, and `images`/`audit` look."""
        return self.root / "wheelhouse"

    def arch(self, name: str) -> Arch:
        return next(a for a in self.archs if a.name == name)

    def framework(self, name: str) -> Framework:
        return next(f for f in self.frameworks if f.name == name)

    def wheel(self, name: str) -> WheelPackage:
        return next(w for w in self.wheels if w.name == name)

    def find_release(self, name: str) -> Release | None:
        """A release by its reference name; ``0.7.1`` finds ``v0.7.1``."""
        found = self._release_index.get(name)
        if found is None and not name.startswith("v"):
            found = self._release_index.get("v" + name)
        return found
