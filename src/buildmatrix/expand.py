"""Expansion: the matrix becomes the list of build targets every other step consumes.

A target is one wheel (package, release, arch, Python) or one image (framework,
release, arch). Every rule of the matrix holds on every target: a combination a
rule forbids is never planned, and the plan records which rule dropped it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from buildmatrix.model import (
    Arch,
    Framework,
    ImageSpec,
    Matrix,
    Release,
    Rule,
    WheelKind,
    WheelPackage,
)

__all__ = ["Exclusion", "ImageTarget", "Plan", "Target", "TargetKind", "WheelTarget", "expand", "image_pins"]


class TargetKind(enum.StrEnum):
    WHEEL = "wheel"
    IMAGE = "image"


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelTarget:
    """One wheel: a package of a release, for one arch and Python."""

    kind: ClassVar[TargetKind] = TargetKind.WHEEL
    release: Release
    arch: Arch
    python: str  # "3.12": the interpreter the wheel is built for (abi3 and pure: the floor)
    package: WheelPackage

    @property
    def id(self) -> str:
        """Stable, unique and readable: ``wheel:kvbm:v0.7.1:cp312:x86_64``."""
        return f"wheel:{self.package.name}:{self.release.name}:{self.python_tag}:{self.arch.name}"

    @property
    def python_tag(self) -> str:
        """The wheel's interpreter tag: ``cp312``, ``cp310-abi3`` or ``py3``."""
        if self.package.kind is WheelKind.PURE:
            return "py3"
        tag = "cp" + self.python.replace(".", "")
        if self.package.abi3:
            tag += "-abi3"
        return tag

    @property
    def platform_tag(self) -> str:
        """``manylinux_2_28_x86_64`` for native wheels, ``any`` for pure ones."""
        if self.package.kind is WheelKind.PURE:
            return "any"
        return f"{self.package.policy}_{self.arch.name}"

    @property
    def build_identifier(self) -> str:
        """cibuildwheel's build selector for this wheel, ``cp312-manylinux_x86_64``."""
        return f"cp{self.python.replace('.', '')}-manylinux_{self.arch.name}"

    @property
    def attributes(self) -> dict[str, str]:
        """What rules see: kind, release, arch, python and package."""
        return _common_attributes(self) | {"package": str(self.package.name)}

    def to_json(self) -> dict[str, Any]:
        return _common_json(self) | {
            "package": str(self.package.name),
            "policy": self.package.policy,
            "pure": self.package.kind is WheelKind.PURE,
            "abi3": self.package.abi3,
            "python_tag": self.python_tag,
            "platform_tag": self.platform_tag,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageTarget:
    """One image: a framework's image of a release, for one arch."""

    kind: ClassVar[TargetKind] = TargetKind.IMAGE
    release: Release
    arch: Arch
    python: str  # "3.12": the image's interpreter
    image: ImageSpec
    framework: Framework
    cuda: Version
    pins: Mapping[NormalizedName, Version]

    @property
    def id(self) -> str:
        """Stable, unique and readable: ``image:vllm:v0.7.1:cuda12.8:linux/amd64``."""
        return f"image:{self.framework.name}:{self.release.name}:cuda{self.cuda}:{self.arch.platform}"

    @property
    def attributes(self) -> dict[str, str]:
        """What rules see: kind, release, arch, python, framework and os."""
        return _common_attributes(self) | {"framework": self.framework.name, "os": self.image.os}

    def to_json(self) -> dict[str, Any]:
        return _common_json(self) | {
            "framework": self.framework.name,
            "image": self.image.name,
            "os": self.image.os,
            "cuda": str(self.cuda),
            "pins": {str(name): str(version) for name, version in self.pins.items()},
        }


Target = WheelTarget | ImageTarget


def _common_attributes(target: Target) -> dict[str, str]:
    return {
        "kind": str(target.kind),
        "release": target.release.name,
        "arch": target.arch.name,
        "python": target.python,
    }


def _common_json(target: Target) -> dict[str, Any]:
    return {
        "id": target.id,
        "kind": str(target.kind),
        "release": target.release.name,
        "version": str(target.release.version),
        "arch": target.arch.name,
        "platform": target.arch.platform,
        "python": target.python,
    }


@dataclass(frozen=True, slots=True)
class Exclusion:
    target: Target
    rule: Rule


@dataclass(frozen=True, slots=True)
class Plan:
    targets: tuple[Target, ...]
    excluded: tuple[Exclusion, ...]

    def __iter__(self) -> Iterator[Target]:
        return iter(self.targets)

    def __len__(self) -> int:
        return len(self.targets)

    def wheels(self) -> tuple[WheelTarget, ...]:
        return tuple(t for t in self.targets if isinstance(t, WheelTarget))

    def images(self) -> tuple[ImageTarget, ...]:
        return tuple(t for t in self.targets if isinstance(t, ImageTarget))


def image_pins(framework: Framework, release: Release) -> dict[NormalizedName, Version]:
    """The pins an image of ``framework`` carries: its own distribution first, then
    every other pinned distribution the image installs (e.g. NIXL)."""
    names = [framework.distribution]
    names.extend(canonicalize_name(r.name) for r in framework.image_requirements(release.pins))
    return {name: release.pins[name] for name in dict.fromkeys(names) if name in release.pins}


def expand(
    matrix: Matrix,
    *,
    releases: Iterable[Release] | None = None,
    kind: TargetKind | None = None,
    framework: str | None = None,
    arch: str | None = None,
    python: str | None = None,
) -> Plan:
    """Every target of the selected releases, in a deterministic order.

    Order: releases as in the matrix; within one, wheels (packages in matrix
    order, then arch, then Python) before images (frameworks, then arch).
    ``framework`` selects image targets of that framework only.
    """
    selected = tuple(matrix.releases if releases is None else releases)
    kept: list[Target] = []
    excluded: list[Exclusion] = []
    for release in selected:
        candidates: list[Target] = []
        if kind in (None, TargetKind.WHEEL) and framework is None:
            candidates.extend(_wheel_candidates(matrix, release))
        if kind in (None, TargetKind.IMAGE):
            candidates.extend(_image_candidates(matrix, release, framework))
        for target in candidates:
            if arch is not None and target.arch.name != arch:
                continue
            if python is not None and target.python != python:
                continue
            broken = _first_broken_rule(matrix.rules, target.attributes)
            if broken is None:
                kept.append(target)
            else:
                excluded.append(Exclusion(target, broken))
    return Plan(tuple(kept), tuple(excluded))


def _first_broken_rule(rules: tuple[Rule, ...], attributes: Mapping[str, str]) -> Rule | None:
    for rule in rules:
        if not rule.permits(attributes):
            return rule
    return None


def _wheel_candidates(matrix: Matrix, release: Release) -> Iterator[WheelTarget]:
    for package in matrix.wheels:
        # An abi3 or pure wheel built for the lowest Python serves all the others.
        one_build = package.abi3 or package.kind is WheelKind.PURE
        pythons = package.python[:1] if one_build else package.python
        for arch_name in package.arch:
            for version in pythons:
                yield WheelTarget(
                    release=release,
                    arch=matrix.arch(arch_name),
                    python=version,
                    package=package,
                )


def _image_candidates(matrix: Matrix, release: Release, framework: str | None) -> Iterator[ImageTarget]:
    for image in matrix.images:
        if framework is not None and image.framework != framework:
            continue
        fw = matrix.framework(image.framework)
        pins = image_pins(fw, release)
        for arch_name in image.arch:
            yield ImageTarget(
                release=release,
                arch=matrix.arch(arch_name),
                python=image.python,
                image=image,
                framework=fw,
                cuda=release.cuda[fw.name],
                pins=pins,
            )
