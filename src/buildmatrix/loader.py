"""Read and validate matrix.toml: the one place raw TOML becomes the typed model.

Everything a later step passes to a command, a Dockerfile ARG or a label is
checked here, so no other module validates input: versions are PEP 440
(``packaging``), distribution names are canonical, names and paths use a safe
character set, image references are pinned (never ``latest``). Each error names
the file, the key path and, when the TOML text shows it, the line.

Each table has its reader (``buildmatrix.matrixfile.tables``, ``.releases``),
reading through a ``Section`` that holds the value validators; the checks across
tables run on the built ``Matrix`` (``buildmatrix.matrixfile.checks``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buildmatrix.errors import MatrixError, Origin, UsageError, did_you_mean
from buildmatrix.matrixfile.checks import run_checks
from buildmatrix.matrixfile.lines import KeyPath, LineIndex, dotted
from buildmatrix.matrixfile.releases import read_releases
from buildmatrix.matrixfile.section import Document, Section, image_ref_problem, url_problem
from buildmatrix.matrixfile.tables import (
    RULE_ATTRIBUTES,
    read_arch,
    read_build_support,
    read_cloud,
    read_cuda_base_images,
    read_dependency,
    read_framework,
    read_gpu,
    read_image,
    read_installs,
    read_manylinux,
    read_note,
    read_operating_system,
    read_project,
    read_rule,
    read_runners,
    read_runtime,
    read_wheel,
)
from buildmatrix.model import (
    Arch,
    CloudPlatform,
    Dependency,
    Framework,
    GpuArch,
    ImageSpec,
    Matrix,
    OperatingSystem,
    Release,
    RuntimePackage,
    WheelPackage,
)

__all__ = [
    "RULE_ATTRIBUTES",
    "image_ref_problem",
    "load_matrix",
    "parse_matrix",
    "select_releases",
    "url_problem",
]

SCHEMA_VERSION = 1


def load_matrix(path: Path) -> Matrix:
    """Read ``path``; any problem is a ``MatrixError``/``UsageError`` (exit 2).

    Only a regular file of at most ``MAX_INPUT_BYTES`` is read (a FIFO would
    block forever), and nesting deeper than ``MAX_NESTING`` is refused.
    """
    from buildmatrix._paths import read_regular_text

    try:
        text = read_regular_text(path, "matrix file")
    except UsageError as error:
        if "not found" in error.message:
            msg = f"{error.message} (pass --matrix PATH or set $BUILDMATRIX_MATRIX)"
            raise UsageError(msg) from None
        raise
    return parse_matrix(text, path)


MAX_NESTING = 16  # tables and arrays inside each other; the real matrix needs 4


def parse_matrix(text: str, path: Path) -> Matrix:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MatrixError(Origin(str(path)), f"invalid TOML: {error}") from None
    except RecursionError:
        raise MatrixError(Origin(str(path)), "invalid TOML: nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise MatrixError(Origin(str(path)), f"invalid TOML: {error}") from None
    _check_nesting(data, path)
    return _read_matrix(Document(path, LineIndex(text)), data)


def _check_nesting(data: object, path: Path) -> None:
    """Refuse deeper nesting than any matrix needs, before recursive code walks it."""
    stack: list[tuple[object, KeyPath]] = [(data, ())]
    while stack:
        value, key = stack.pop()
        if len(key) > MAX_NESTING:
            problem = f"nested more than {MAX_NESTING} levels deep"
            raise MatrixError(Origin(str(path), dotted(key[:MAX_NESTING]) + "..."), problem)
        if isinstance(value, dict):
            stack.extend((item, (*key, str(name))) for name, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*key, index)) for index, item in enumerate(value))


def select_releases(matrix: Matrix, names: Sequence[str] | None) -> tuple[Release, ...]:
    """The releases named on the command line, in matrix order; all when none are."""
    if not names:
        return matrix.releases
    chosen: list[Release] = []
    for name in names:
        release = matrix.find_release(name)
        if release is None:
            known = [r.name for r in matrix.releases]
            msg = (
                f"unknown release {name!r}{did_you_mean(name, known)}; "
                f"releases in {matrix.path}: {', '.join(known)}"
            )
            raise UsageError(msg)
        if release not in chosen:
            chosen.append(release)
    return tuple(r for r in matrix.releases if r in chosen)


@dataclass(frozen=True, slots=True)
class _Platforms:
    """What the artifacts run on: [[arch]], [[gpu]], [[os]], [[cloud]], [[runtime]]."""

    archs: tuple[Arch, ...]
    gpus: tuple[GpuArch, ...]
    systems: tuple[OperatingSystem, ...]
    clouds: tuple[CloudPlatform, ...]
    runtime: tuple[RuntimePackage, ...]

    @property
    def arch_names(self) -> list[str]:
        return [a.name for a in self.archs]


@dataclass(frozen=True, slots=True)
class _Software:
    """What is pinned: [dependency.*], [framework.*], [[release]]."""

    dependencies: tuple[Dependency, ...]
    frameworks: tuple[Framework, ...]
    releases: tuple[Release, ...]


@dataclass(frozen=True, slots=True)
class _Artifacts:
    """What is built: [manylinux], [wheel.*], [cuda_base_images], [image.*]."""

    manylinux_images: dict[str, str]
    wheels: tuple[WheelPackage, ...]
    cuda_base_images: dict[str, str]
    images: tuple[ImageSpec, ...]


def _read_matrix(document: Document, data: dict[str, object]) -> Matrix:
    root = Section(document, data, ())
    if not data:
        raise document.error(
            (), "the matrix is empty: it needs at least [[release]], [[arch]] and [framework.*]"
        )
    schema = root.get("schema", int)
    if schema != SCHEMA_VERSION:
        raise root.error(
            "schema", f"unsupported schema {schema}; this buildmatrix reads schema {SCHEMA_VERSION}"
        )
    project, source_url = read_project(root.table("project"))
    platforms = _read_platforms(root)
    software = _read_software(root)
    artifacts = _read_artifacts(root, platforms, [f.name for f in software.frameworks])
    choices = _rule_choices(platforms, software, artifacts)
    rules = tuple(read_rule(s, choices) for s in root.optional_tables("rule"))
    root.unique("rule", [r.id for r in rules])
    matrix = Matrix(
        path=document.path,
        project=project,
        source_url=source_url,
        archs=platforms.archs,
        gpus=platforms.gpus,
        operating_systems=platforms.systems,
        clouds=platforms.clouds,
        runtime_packages=platforms.runtime,
        dependencies=software.dependencies,
        frameworks=software.frameworks,
        releases=software.releases,
        wheels=artifacts.wheels,
        images=artifacts.images,
        rules=rules,
        notes=tuple(read_note(s) for s in root.optional_tables("note")),
        build_support=tuple(read_build_support(s) for s in root.optional_tables("build_support")),
        manylinux_images=artifacts.manylinux_images,
        cuda_base_images=artifacts.cuda_base_images,
        runners=read_runners(root, platforms.arch_names),
        installs=read_installs(
            root.optional_table("installs"), [f.extra for f in software.frameworks], platforms.arch_names
        ),
        _release_index={r.name: r for r in software.releases},
    )
    root.finish()
    run_checks(matrix, document)
    return matrix


def _rule_choices(platforms: _Platforms, software: _Software, artifacts: _Artifacts) -> dict[str, list[str]]:
    """What each attribute of a [[rule]] may name."""
    return {
        "kind": ["wheel", "image"],
        "release": [r.name for r in software.releases],
        "arch": platforms.arch_names,
        "package": [str(w.name) for w in artifacts.wheels],
        "framework": [f.name for f in software.frameworks],
        "os": sorted({o.id for o in platforms.systems}),
    }


def _read_platforms(root: Section) -> _Platforms:
    archs = tuple(read_arch(s) for s in root.tables("arch"))
    root.unique("arch", [a.name for a in archs])
    arch_names = [a.name for a in archs]
    gpus = tuple(read_gpu(s) for s in root.tables("gpu"))
    root.unique("gpu", [g.name for g in gpus])
    systems = tuple(read_operating_system(s, arch_names) for s in root.tables("os"))
    root.unique("os", [f"{o.id} on {o.arch}" for o in systems])
    clouds = tuple(read_cloud(s, arch_names) for s in root.optional_tables("cloud"))
    runtime = tuple(read_runtime(s) for s in root.tables("runtime"))
    root.unique("runtime", [r.name for r in runtime])
    return _Platforms(archs=archs, gpus=gpus, systems=systems, clouds=clouds, runtime=runtime)


def _read_software(root: Section) -> _Software:
    dependencies = tuple(read_dependency(name, s) for name, s in root.subtables("dependency"))
    root.unique("dependency", [d.name for d in dependencies])
    dependency_names = [str(d.name) for d in dependencies]
    frameworks = tuple(read_framework(name, s, dependency_names) for name, s in root.subtables("framework"))
    releases = read_releases(root, dependency_names, [f.name for f in frameworks])
    return _Software(dependencies=dependencies, frameworks=frameworks, releases=releases)


def _read_artifacts(root: Section, platforms: _Platforms, frameworks: Sequence[str]) -> _Artifacts:
    arch_names = platforms.arch_names
    policy, manylinux_images = read_manylinux(root.table("manylinux"), arch_names)
    wheels = tuple(read_wheel(name, s, arch_names, policy) for name, s in root.subtables("wheel"))
    root.unique("wheel", [w.name for w in wheels])
    cuda_base_images = read_cuda_base_images(root.table("cuda_base_images"))
    os_ids = sorted({o.id for o in platforms.systems})
    images = tuple(read_image(name, s, frameworks, os_ids, arch_names) for name, s in root.subtables("image"))
    return _Artifacts(
        manylinux_images=manylinux_images, wheels=wheels, cuda_base_images=cuda_base_images, images=images
    )
