"""The meta package's extras against the matrix: in a pyproject.toml and in a wheel.

An exact pin (``==``) must equal the release's pin, a range (NIXL's ``<=X``) must
admit it, the extras of a requirement (``nixl[cu12]``) must be there, and the
meta package must require its runtime package at the release's own version.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import BuildMatrixError
from buildmatrix.model import Matrix, Release, ReleaseStatus, WheelPackage
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


def _where(extra: Extra) -> str:
    return "base requirements" if extra is None else f"extra {extra!r}"


def _compare(
    subject: str,
    release: Release,
    extra: Extra,
    expected: Requirement,
    found: Requirement,
) -> Check:
    name = canonicalize_name(expected.name)
    where = _where(extra)
    missing_extras = {canonicalize_name(e) for e in expected.extras} - {
        canonicalize_name(e) for e in found.extras
    }
    found_text = _without_marker(found)
    pins = release.pins
    problems = []
    if missing_extras:
        problems.append(f"lacks extras [{','.join(sorted(missing_extras))}]")
    exact = exact_version(expected.specifier)
    if exact is not None:
        found_exact = exact_version(found.specifier)
        if found_exact is None:
            problems.append(f"is not pinned exactly (expected =={exact})")
        elif found_exact != exact:
            problems.append(f"pins {found_exact}, the matrix says {exact}")
    elif name in pins:
        if not found.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{found.specifier or '(any)'} does not admit the pin {pins[name]}")
    elif found.specifier != expected.specifier:
        problems.append(f"specifier {found.specifier} differs from {expected.specifier}")
    return Check(
        subject=subject,
        name=name,
        expected=_without_marker(expected),
        found=found_text,
        ok=not problems,
        detail=f"{where}: "
        + ("; ".join(problems) if problems else "agrees with the matrix")
        + f" ({release.name})",
    )


def _without_marker(requirement: Requirement) -> str:
    copy = Requirement(str(requirement))
    copy.marker = None
    return str(copy)


def check_declared(
    subject: str,
    release: Release,
    expected: Mapping[Extra, Sequence[Requirement]],
    declared: Mapping[Extra, Sequence[Requirement]],
) -> list[Check]:
    """Compare declared requirements (per extra) with the expected ones."""
    checks = []
    for extra, requirements in expected.items():
        present = declared.get(extra)
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            if present is None:
                checks.append(
                    Check(
                        subject=subject,
                        name=name,
                        expected=_without_marker(requirement),
                        found="(no such extra)",
                        ok=False,
                        detail=f"{_where(extra)} is missing ({release.name})",
                    )
                )
                continue
            matches = [r for r in present if canonicalize_name(r.name) == name]
            if not matches:
                checks.append(
                    Check(
                        subject=subject,
                        name=name,
                        expected=_without_marker(requirement),
                        found="(not required)",
                        ok=False,
                        detail=f"{_where(extra)} does not require {name} ({release.name})",
                    )
                )
                continue
            checks.extend(_compare(subject, release, extra, requirement, m) for m in matches)
    return checks


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
    # A static version names the release the file belongs to, whatever is selected;
    # otherwise the selected releases, or the development release.
    version = parse_version(project.get("version"))
    own = None if version is None else _release_for_version(matrix, version)
    if own is not None:
        release_list = [own]
    elif releases:
        release_list = list(releases)
    else:
        release_list = [_default_release(matrix)]
    declared: dict[Extra, list[Requirement]] = {}
    if "dependencies" not in dynamic:
        base = _parse_requirements(project.get("dependencies", []), f"{path}: dependencies", collector.errors)
        if base is None:
            return
        declared[None] = base
    if "optional-dependencies" not in dynamic:
        for extra, items in (project.get("optional-dependencies") or {}).items():
            parsed = _parse_requirements(items, f"{path}: optional-dependencies.{extra}", collector.errors)
            if parsed is None:
                return
            declared[canonicalize_name(extra)] = parsed
    for release in release_list:
        expected = expected_meta_requirements(matrix, release, package)
        if "optional-dependencies" in dynamic:
            collector.add(
                Check(
                    subject=subject,
                    name=package.name,
                    expected="extras generated from the matrix",
                    found="optional-dependencies is dynamic",
                    ok=True,
                    detail="extras are written at build time; verify the built wheel with --wheel",
                )
            )
            expected = {k: v for k, v in expected.items() if k is None}
        if "dependencies" in dynamic:
            expected = {k: v for k, v in expected.items() if k is not None}
        collector.add(*check_declared(subject, release, expected, declared))


def parse_version(value: object) -> Version | None:
    if not isinstance(value, str):
        return None
    try:
        return Version(value)
    except InvalidVersion:
        return None


# --------------------------------------------------------------------------- wheels


def _requirements_by_extra(metadata: WheelMetadata, pythons: Sequence[str]) -> dict[Extra, list[Requirement]]:
    """Requires-Dist grouped by the extra whose marker selects them.

    A requirement belongs to extra E when, for some Python the package supports,
    its marker holds with ``extra == E`` and not without an extra; markers are
    evaluated by ``packaging``, so ``extra == "vllm" and python_version < "3.13"``
    works like pip sees it.
    """
    environments = [{"python_version": p, "python_full_version": f"{p}.0"} for p in pythons or ("3.12",)]
    grouped: dict[Extra, list[Requirement]] = {None: []}
    for extra in metadata.extras:
        grouped[extra] = []
    for requirement in metadata.requires:
        marker: Marker | None = requirement.marker
        if marker is None:
            grouped[None].append(requirement)
            continue
        if any(marker.evaluate({**env, "extra": ""}) for env in environments):
            grouped[None].append(requirement)
            continue
        for extra in metadata.extras:
            if any(marker.evaluate({**env, "extra": extra}) for env in environments):
                grouped[extra].append(requirement)
    return grouped


def check_wheel(matrix: Matrix, path: Path, releases: Sequence[Release] | None, collector: Collector) -> None:
    subject = str(path)
    try:
        metadata = read_wheel_metadata(path)
    except BuildMatrixError as error:
        collector.errors.append(error.message)
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
    release = _release_for_version(matrix, metadata.version)
    if releases and release is not None and release not in releases:
        # CI verifies each release of a run with all its wheels: another release's
        # wheel is that release's to check, not a failure of this one.
        collector.notes.append(f"{path.name} is {release.name}'s ({metadata.version}); not selected, skipped")
        return
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
        return
    collector.add(
        Check(
            subject=subject,
            name=metadata.name,
            expected=str(release.version),
            found=str(metadata.version),
            ok=True,
            detail=f"wheel version is release {release.name}",
        )
    )
    if not package.meta:
        return
    expected = expected_meta_requirements(matrix, release, package)
    declared = _requirements_by_extra(metadata, package.python)
    collector.add(*check_declared(subject, release, expected, declared))
