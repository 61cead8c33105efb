"""The meta package's extras against the matrix: in a pyproject.toml and in a wheel.

Per extra, and for the base requirements (the runtime package at the release's
own version), what is declared must equal what the matrix generates: same
names, extras, specifier sets and markers, nothing missing and nothing more
(``buildmatrix.verify.pins``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import BuildMatrixError
from buildmatrix.model import Matrix, Release, ReleaseStatus, WheelPackage
from buildmatrix.verify import pins
from buildmatrix.verify.pins import compare_all, group_by_extra, marker_text
from buildmatrix.verify.report import Check, Collector
from buildmatrix.wheelmeta import WheelMetadata, read_wheel_metadata

__all__ = [
    "Extra",
    "check_declared",
    "check_pyproject",
    "check_wheel",
    "exact_version",
    "expected_meta_requirements",
    "meta_packages",
    "parse_version",
]

# A requirement's extra, as a key of the per-extra mapping; None = always required.
Extra = str | None


def meta_packages(matrix: Matrix) -> tuple[WheelPackage, ...]:
    return tuple(package for package in matrix.wheels if package.meta)


def expected_meta_requirements(
    matrix: Matrix, release: Release, package: WheelPackage
) -> dict[Extra, tuple[Requirement, ...]]:
    """What the meta package must declare for ``release``: its base requirement on the
    runtime package (key None) and, per framework, the extra's requirements."""
    expected: dict[Extra, tuple[Requirement, ...]] = {}
    if package.requires_runtime is not None:
        expected[None] = (Requirement(f"{package.requires_runtime}=={release.version}"),)
    for framework in matrix.frameworks:
        expected[canonicalize_name(framework.extra)] = framework.requirements(release.pins)
    return expected


def exact_version(specifier: SpecifierSet) -> Version | None:
    """The version of a single ``==V``/``===V`` specifier (no wildcard), else None."""
    specs = list(specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or specs[0].version.endswith("*"):
        return None
    try:
        return Version(specs[0].version)
    except InvalidVersion:
        return None


def check_declared(
    subject: str,
    release: Release,
    expected: Mapping[Extra, Sequence[Requirement]],
    declared: Mapping[Extra, Sequence[Requirement]],
    notes: list[str] | None = None,
) -> list[Check]:
    """Compare declared requirements (per extra, markers without the extra clause)
    with the expected ones exactly, both ways (``buildmatrix.verify.pins``)."""
    with_markers = {
        None if extra is None else canonicalize_name(extra): [
            (r, marker_text(r.marker)) for r in requirements
        ]
        for extra, requirements in declared.items()
    }
    return compare_all(subject, release, _canonical_keys(expected), with_markers, notes)


def _canonical_keys(
    expected: Mapping[Extra, Sequence[Requirement]],
) -> dict[pins.Extra, Sequence[Requirement]]:
    return {None if extra is None else canonicalize_name(extra): value for extra, value in expected.items()}


# --------------------------------------------------------------------------- pyproject


def _release_for_version(matrix: Matrix, version: Version) -> Release | None:
    return next((r for r in matrix.releases if r.version == version), None)


def _default_release(matrix: Matrix) -> Release:
    return next((r for r in matrix.releases if r.status is ReleaseStatus.DEVELOPMENT), matrix.releases[0])


def _parse_requirements(raw: Iterable[Any], where: str, errors: list[str]) -> list[Requirement] | None:
    result = []
    for item in raw:
        try:
            result.append(Requirement(str(item)))
        except InvalidRequirement as error:
            errors.append(f"{where}: invalid requirement {item!r}: {error}")
            return None
    return result


def check_pyproject(
    matrix: Matrix,
    path: Path,
    package: WheelPackage | None,
    releases: Sequence[Release] | None,
    collector: Collector,
) -> None:
    """Check the static extras of a meta package's pyproject.toml."""
    subject = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        collector.errors.append(f"cannot read {path}: {error}")
        return
    project = data.get("project")
    if not isinstance(project, dict):
        collector.errors.append(f"{path}: no [project] table")
        return
    dynamic = set(project.get("dynamic", []))
    if package is None:
        name = canonicalize_name(str(project.get("name", "")))
        package = next((p for p in meta_packages(matrix) if p.name == name), None)
        if package is None and meta_packages(matrix):
            package = meta_packages(matrix)[0]
    if package is None:
        collector.errors.append(f"{path}: the matrix names no meta package (`meta = true`)")
        return
    release_list = _pyproject_releases(matrix, project, releases)
    if {"dependencies", "optional-dependencies"} & dynamic:
        # Generated at build time: what the build really writes is what is checked.
        from buildmatrix.verify.built import check_meta_build

        for release in release_list:
            check_meta_build(matrix, package, path.parent, release, collector)
        return
    declared = _declared_requirements(project, path, collector.errors)
    if declared is None:
        return
    for release in release_list:
        expected = expected_meta_requirements(matrix, release, package)
        collector.add(*check_declared(subject, release, expected, declared, collector.notes))


def _pyproject_releases(
    matrix: Matrix, project: dict[str, Any], releases: Sequence[Release] | None
) -> list[Release]:
    """A static version names the release the file belongs to, whatever is selected;
    otherwise the selected releases, or the development release."""
    version = parse_version(project.get("version"))
    own = None if version is None else _release_for_version(matrix, version)
    if own is not None:
        return [own]
    if releases:
        return list(releases)
    return [_default_release(matrix)]


def _declared_requirements(
    project: dict[str, Any], path: Path, errors: list[str]
) -> dict[Extra, list[Requirement]] | None:
    """The static dependencies (extra None) and optional dependencies; None when one is invalid."""
    declared: dict[Extra, list[Requirement]] = {}
    base = _parse_requirements(project.get("dependencies", []), f"{path}: dependencies", errors)
    if base is None:
        return None
    declared[None] = base
    for extra, items in (project.get("optional-dependencies") or {}).items():
        parsed = _parse_requirements(items, f"{path}: optional-dependencies.{extra}", errors)
        if parsed is None:
            return None
        declared[canonicalize_name(extra)] = parsed
    return declared


def parse_version(value: object) -> Version | None:
    if not isinstance(value, str):
        return None
    try:
        return Version(value)
    except InvalidVersion:
        return None


# --------------------------------------------------------------------------- wheels


def check_wheel(matrix: Matrix, path: Path, releases: Sequence[Release] | None, collector: Collector) -> None:
    subject = str(path)
    metadata = _wheel_metadata(path, subject, collector)
    if metadata is None:
        return
    package = next((p for p in matrix.wheels if p.name == metadata.name), None)
    if package is None:
        collector.add(
            Check(
                subject=subject,
                name=metadata.name,
                expected="a wheel the matrix names: " + ", ".join(p.name for p in matrix.wheels),
                found=metadata.name,
                ok=False,
                detail="not a package of the matrix",
            )
        )
        return
    release = _wheel_release(matrix, subject, metadata, releases, collector)
    if release is None:
        return
    collector.add(
        Check(
            subject=subject,
            name=metadata.name,
            expected=str(release.version),
            found=str(metadata.version),
            ok=release.version == metadata.version,
            detail=f"wheel version is release {release.name}",
        )
    )
    if package.meta:
        collector.add(
            *check_meta_metadata(matrix, subject, metadata, release, package, notes=collector.notes)
        )


def _wheel_metadata(path: Path, subject: str, collector: Collector) -> WheelMetadata | None:
    """The wheel's METADATA (a failed check when it disagrees with the file name); None when
    the file is not a wheel or cannot be read."""
    try:
        name, file_version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename as error:
        collector.add(
            Check(
                subject=subject,
                name=path.name,
                expected="a wheel file (name-version-tags.whl)",
                found=path.name,
                ok=False,
                detail=f"not a wheel: {error}",
            )
        )
        return None
    try:
        metadata = read_wheel_metadata(path)
    except BuildMatrixError as error:
        collector.errors.append(error.message)
        return None
    if (metadata.name, metadata.version) != (name, file_version):
        collector.add(
            Check(
                subject=subject,
                name=metadata.name,
                expected=f"{name} {file_version} (the file name)",
                found=f"{metadata.name} {metadata.version} (METADATA)",
                ok=False,
                detail="the wheel's file name and METADATA disagree",
            )
        )
    return metadata


def _wheel_release(
    matrix: Matrix,
    subject: str,
    metadata: WheelMetadata,
    releases: Sequence[Release] | None,
    collector: Collector,
) -> Release | None:
    """The release a wheel's version names (among the selected ones); None, with a failed
    check, when there is none to judge it against."""
    release = _release_for_version(matrix, metadata.version)
    if releases and release is not None and release not in releases:
        selected = ", ".join(r.name for r in releases)
        collector.add(
            Check(
                subject=subject,
                name=metadata.name,
                expected=" or ".join(f"{r.version} ({r.name})" for r in releases),
                found=f"{metadata.version} ({release.name})",
                ok=False,
                detail=f"the wheel belongs to release {release.name}, not to the selected {selected}",
            )
        )
        return None
    if releases and release is None:
        collector.add(
            Check(
                subject=subject,
                name=metadata.name,
                expected=" or ".join(str(r.version) for r in releases),
                found=str(metadata.version),
                ok=False,
                detail="no release of the matrix has the wheel's version",
            )
        )
        release = releases[0]
    if release is None:
        collector.add(
            Check(
                subject=subject,
                name=metadata.name,
                expected="a release version: " + ", ".join(str(r.version) for r in matrix.releases),
                found=str(metadata.version),
                ok=False,
                detail="no release of the matrix has this version",
            )
        )
        return None
    return release


def check_meta_metadata(
    matrix: Matrix,
    subject: str,
    metadata: WheelMetadata,
    release: Release,
    package: WheelPackage,
    *,
    notes: list[str] | None = None,
) -> list[Check]:
    """The meta wheel's Requires-Dist and Provides-Extra against the matrix, exactly."""
    expected = _canonical_keys(expected_meta_requirements(matrix, release, package))
    grouped, unclear = group_by_extra(metadata.requires)
    checks = compare_all(subject, release, expected, grouped, notes)
    checks += [
        Check(
            subject=subject,
            name=canonicalize_name(r.name),
            expected='a marker of the form `... and extra == "X"`',
            found=str(r),
            ok=False,
            detail=f"cannot tell which extra requires this ({release.name})",
        )
        for r in unclear
    ]
    provided = set(metadata.extras)
    for extra in expected:
        if extra is not None and extra not in provided:
            checks.append(
                Check(
                    subject=subject,
                    name=extra,
                    expected=f"Provides-Extra: {extra}",
                    found="(not provided)",
                    ok=False,
                    detail=f"the wheel does not provide the extra {extra!r} ({release.name})",
                )
            )
    for extra in sorted(provided - set(expected)):
        checks.append(
            Check(
                subject=subject,
                name=extra,
                expected="(not generated)",
                found=f"Provides-Extra: {extra}",
                ok=False,
                detail=f"the matrix generates no extra {extra!r} ({release.name})",
            )
        )
    return checks
