"""Checks across tables of matrix.toml, run in order on the built ``Matrix``.

Each table's reader checks the table itself and the names it refers to; what
needs two tables at once (a framework's requirements filled with every
release's pins, a native wheel's manylinux image) is one named check here.
Each error points at the key that would fix it.
"""

from __future__ import annotations

from collections.abc import Callable

from packaging.requirements import InvalidRequirement
from packaging.utils import canonicalize_name

from buildmatrix.errors import did_you_mean
from buildmatrix.matrixfile.section import Document
from buildmatrix.model import Matrix, WheelKind

__all__ = ["CROSS_TABLE_CHECKS", "run_checks"]

Check = Callable[[Matrix, Document], None]


def framework_requirements(matrix: Matrix, document: Document) -> None:
    """Every release turns every framework's requirement templates into valid requirements,
    one of them on the framework's own distribution."""
    for framework in matrix.frameworks:
        where = ("framework", framework.name)
        for release in matrix.releases:
            try:
                requirements = framework.requirements(release.pins)
            except InvalidRequirement as error:
                problem = f"release {release.name}: invalid requirement: {error}"
                raise document.error((*where, "requires"), problem) from None
            try:
                framework.image_requirements(release.pins)
            except InvalidRequirement as error:
                problem = f"release {release.name}: invalid requirement: {error}"
                raise document.error((*where, "image_requires"), problem) from None
            if framework.distribution not in {canonicalize_name(r.name) for r in requirements}:
                problem = f"no requirement on the framework's own distribution {framework.distribution!r}"
                raise document.error((*where, "requires"), problem)


def wheel_runtimes_and_images(matrix: Matrix, document: Document) -> None:
    """A wheel's ``requires_runtime`` is a wheel of the matrix; a native wheel has a
    manylinux image for every arch it is built for."""
    names = [str(w.name) for w in matrix.wheels]
    for wheel in matrix.wheels:
        runtime = wheel.requires_runtime
        if runtime is not None and runtime not in names:
            problem = (
                f"unknown wheel package {runtime!r}{did_you_mean(runtime, names)}; known: {', '.join(names)}"
            )
            raise document.error(("wheel", wheel.name, "requires_runtime"), problem)
        if wheel.kind is WheelKind.NATIVE:
            for arch in wheel.arch:
                if arch not in matrix.manylinux_images:
                    problem = f"no manylinux image for arch {arch!r}, which wheel {wheel.name!r} is built for"
                    raise document.error(("manylinux", "images"), problem)


def cuda_base_images(matrix: Matrix, document: Document) -> None:
    """Every CUDA version a framework with an image uses in a release has a base image."""
    for release in matrix.releases:
        for framework in matrix.frameworks:
            cuda = str(release.cuda[framework.name])
            if (
                any(i.framework == framework.name for i in matrix.images)
                and cuda not in matrix.cuda_base_images
            ):
                problem = (
                    f"no base image for CUDA {cuda}, which {framework.name} uses in release {release.name}"
                )
                raise document.error(("cuda_base_images",), problem)


CROSS_TABLE_CHECKS: tuple[Check, ...] = (framework_requirements, wheel_runtimes_and_images, cuda_base_images)


def run_checks(matrix: Matrix, document: Document) -> None:
    for check in CROSS_TABLE_CHECKS:
        check(matrix, document)
