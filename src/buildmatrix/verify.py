"""Prove that every place a pin appears agrees with the matrix.

Each check compares one distribution in one subject (a pyproject.toml, a wheel,
an image, the index) with what the matrix says, using ``packaging`` only: an
exact pin (``==``) must equal the release's pin, a range (NIXL's ``<=X``) must
admit it, and the meta package must require its runtime at the release's own
version. Every check is collected; none stops the others. Input that cannot be
read (a broken wheel, a missing image) is recorded as an error (exit 2) while
the other checks still run and are reported.
"""

from __future__ import annotations

import bisect
import email.parser
import json
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import BuildMatrixError
from buildmatrix.expand import image_pins
from buildmatrix.layers import LIBNIXL_PATTERNS, ImageView, ScanRequest, ScanResult, open_image
from buildmatrix.model import Framework, Matrix, Release, ReleaseStatus, WheelPackage

__all__ = [
    "IMAGE_PINS_FILE",
    "LABEL_FRAMEWORK",
    "LABEL_PIN_PREFIX",
    "LABEL_RELEASE",
    "Check",
    "Collector",
    "Report",
    "VerifyOptions",
    "check_declared",
    "check_image",
    "check_index",
    "check_pyproject",
    "check_wheel",
    "expected_meta_requirements",
    "meta_packages",
    "verify",
]

LABEL_PIN_PREFIX = "org.buildmatrix.pin."
LABEL_RELEASE = "org.buildmatrix.release"
LABEL_FRAMEWORK = "org.buildmatrix.framework"
LABEL_CUDA = "org.buildmatrix.cuda"
LABEL_PYTHON = "org.buildmatrix.python"
IMAGE_PINS_FILE = "/opt/buildmatrix/pins.json"

# A requirement's extra, as a key of the per-extra mapping; None = always required.
Extra = str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    subject: str  # the file or artifact checked
    name: str  # canonical distribution name (or the label/key checked)
    expected: str
    found: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "name": self.name,
            "expected": self.expected,
            "found": self.found,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    checks: tuple[Check, ...] = ()
    errors: tuple[str, ...] = ()  # unreadable input: exit 2 after reporting the rest
    notes: tuple[str, ...] = ()  # what was skipped, and why

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [check.to_json() for check in self.checks],
            "errors": list(self.errors),
            "notes": list(self.notes),
            "summary": {
                "checks": len(self.checks),
                "failed": len(self.failed),
                "errors": len(self.errors),
                "ok": self.exit_code == 0,
            },
        }


@dataclass(slots=True)
class Collector:
    """Checks and input errors gathered while verifying."""

    checks: list[Check] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why

    def add(self, *checks: Check) -> None:
        self.checks.extend(checks)


# --------------------------------------------------------------------------- requirements


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


def _exact_version(specifier: SpecifierSet) -> Version | None:
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
    exact = _exact_version(expected.specifier)
    if exact is not None:
        found_exact = _exact_version(found.specifier)
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
    version = _parse_version(project.get("version"))
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


def _parse_version(value: object) -> Version | None:
    if not isinstance(value, str):
        return None
    try:
        return Version(value)
    except InvalidVersion:
        return None


# --------------------------------------------------------------------------- wheels


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelMetadata:
    name: NormalizedName
    version: Version
    requires: tuple[Requirement, ...]
    extras: tuple[NormalizedName, ...]


def read_wheel_metadata(path: Path) -> WheelMetadata:
    """Name, version, Requires-Dist and Provides-Extra of a wheel's METADATA."""
    try:
        with zipfile.ZipFile(path) as archive:
            candidates = [
                n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1
            ]
            if len(candidates) != 1:
                msg = f"{path}: expected one *.dist-info/METADATA, found {len(candidates)}"
                raise BuildMatrixError(msg)
            text = archive.read(candidates[0]).decode("utf-8")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        msg = f"cannot read wheel {path}: {error}"
        raise BuildMatrixError(msg) from error
    headers = email.parser.HeaderParser().parsestr(text, headersonly=True)
    try:
        requires = tuple(Requirement(r) for r in headers.get_all("Requires-Dist") or [])
        version = Version(headers["Version"] or "")
    except (InvalidRequirement, InvalidVersion) as error:
        msg = f"wheel {path}: invalid METADATA: {error}"
        raise BuildMatrixError(msg) from error
    return WheelMetadata(
        name=canonicalize_name(headers["Name"] or ""),
        version=version,
        requires=requires,
        extras=tuple(canonicalize_name(e) for e in headers.get_all("Provides-Extra") or []),
    )


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


# --------------------------------------------------------------------------- images


def _label_check(subject: str, name: str, label: str, expected: Version, labels: Mapping[str, str]) -> Check:
    raw = labels.get(label)
    found = _parse_version(raw)
    ok = found is not None and found == expected
    detail = f"label {label}"
    if raw is None:
        detail += " is missing"
    elif found is None:
        detail += f": {raw!r} is not a version"
    return Check(
        subject=subject,
        name=name,
        expected=str(expected),
        found="(missing)" if raw is None else raw,
        ok=ok,
        detail=detail,
    )


def _image_identity(
    matrix: Matrix, view: ImageView, releases: Sequence[Release] | None, checks: list[Check]
) -> tuple[Release | None, Framework | None]:
    """The release and framework an image says it is (its labels), each as a check."""
    subject = view.subject
    raw_release = view.labels.get(LABEL_RELEASE)
    labelled = None if raw_release is None else matrix.find_release(raw_release)
    if raw_release is None:
        detail = "label missing"
    elif labelled is None:
        detail = "not a release of the matrix"
    elif releases and labelled not in releases:
        detail = "the image belongs to another release than the one selected"
    else:
        detail = "the image's release"
    checks.append(
        Check(
            subject=subject,
            name=LABEL_RELEASE,
            expected=", ".join(r.name for r in releases) if releases else "a release of the matrix",
            found=raw_release or "(missing)",
            ok=labelled is not None and (not releases or labelled in releases),
            detail=detail,
        )
    )
    # Without a usable label, the selected release still lets the pins be checked.
    release = labelled if labelled is not None else (releases[0] if releases else None)
    raw_framework = view.labels.get(LABEL_FRAMEWORK)
    framework = next((f for f in matrix.frameworks if f.name == raw_framework), None)
    checks.append(
        Check(
            subject=subject,
            name=LABEL_FRAMEWORK,
            expected=" | ".join(f.name for f in matrix.frameworks),
            found=raw_framework or "(missing)",
            ok=framework is not None,
            detail="the image's framework"
            if framework is not None
            else "label missing"
            if raw_framework is None
            else "not a framework of the matrix",
        )
    )
    return release, framework


def _pins_file_checks(
    subject: str,
    raw: bytes | None,
    release: Release,
    framework: Framework,
    pins: Mapping[NormalizedName, Version],
    *,
    python: str | None,
) -> list[Check]:
    where = f"{IMAGE_PINS_FILE}"
    if raw is None:
        return [
            Check(
                subject=subject,
                name="pins.json",
                expected=IMAGE_PINS_FILE,
                found="(missing)",
                ok=False,
                detail="the image carries no pins file",
            )
        ]
    try:
        data = json.loads(raw)
        file_pins = {canonicalize_name(k): str(v) for k, v in data["pins"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return [
            Check(
                subject=subject,
                name="pins.json",
                expected='{"release", "framework", "cuda", "python", "pins"}',
                found="(unreadable)",
                ok=False,
                detail=f"{where}: {error}",
            )
        ]
    checks = [
        Check(
            subject=subject,
            name="release",
            expected=release.name,
            found=str(data.get("release")),
            ok=str(data.get("release")) == release.name,
            detail=f"{where}: release",
        ),
        Check(
            subject=subject,
            name="framework",
            expected=framework.name,
            found=str(data.get("framework")),
            ok=str(data.get("framework")) == framework.name,
            detail=f"{where}: framework",
        ),
    ]
    cuda = release.cuda.get(framework.name)
    if cuda is not None:
        found_cuda = _parse_version(data.get("cuda"))
        checks.append(
            Check(
                subject=subject,
                name="cuda",
                expected=str(cuda),
                found=str(data.get("cuda")),
                ok=found_cuda == cuda,
                detail=f"{where}: cuda",
            )
        )
    if python is not None:
        checks.append(
            Check(
                subject=subject,
                name="python",
                expected=python,
                found=str(data.get("python")),
                ok=_parse_version(data.get("python")) == Version(python),
                detail=f"{where}: python",
            )
        )
    for name, version in pins.items():
        found = _parse_version(file_pins.get(name))
        checks.append(
            Check(
                subject=subject,
                name=name,
                expected=str(version),
                found=file_pins.get(name, "(missing)"),
                ok=found == version,
                detail=f"{where}: pins.{name}",
            )
        )
    return checks


def _installed_checks(
    subject: str,
    result: ScanResult,
    requirements: Sequence[Requirement],
    release: Release,
) -> list[Check]:
    checks = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        installs = result.distributions.get(name, ())
        expected = str(requirement.specifier) or "(any)"
        if not installs:
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected=expected,
                    found="(not installed)",
                    ok=False,
                    detail="no *.dist-info/METADATA of it under site-packages or dist-packages",
                )
            )
            continue
        for install in installs:
            exact = _exact_version(requirement.specifier)
            ok = (
                install.version == exact
                if exact is not None
                else requirement.specifier.contains(install.version, prereleases=True)
            )
            detail = f"installed at {install.path} (layer {install.layer}); {release.name}"
            if len(installs) > 1:
                ok = False
                detail += f"; {len(installs)} installations are visible"
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected=expected,
                    found=str(install.version),
                    ok=ok,
                    detail=detail,
                )
            )
    return checks


def check_image(
    matrix: Matrix,
    reference: str,
    releases: Sequence[Release] | None,
    collector: Collector,
    *,
    platform: str | None = None,
    quick: bool = False,
    on_layer: Callable[[str], None] | None = None,
) -> None:
    """Labels, pins file and installed distributions of every platform of one image."""
    try:
        with open_image(reference, platform=platform) as views:
            for view in views:
                _check_view(matrix, view, releases, collector, quick=quick, on_layer=on_layer)
    except BuildMatrixError as error:
        collector.errors.append(error.message)


def _check_view(
    matrix: Matrix,
    view: ImageView,
    releases: Sequence[Release] | None,
    collector: Collector,
    *,
    quick: bool,
    on_layer: Callable[[str], None] | None,
) -> None:
    subject = view.subject
    checks: list[Check] = []
    release, framework = _image_identity(matrix, view, releases, checks)
    if release is None or framework is None:
        collector.add(*checks)
        return
    pins = image_pins(framework, release)
    requirements = framework.requirements(release.pins)
    for name, version in pins.items():
        checks.append(_label_check(subject, name, LABEL_PIN_PREFIX + name, version, view.labels))
    cuda = release.cuda.get(framework.name)
    if cuda is not None and LABEL_CUDA in view.labels:
        checks.append(_label_check(subject, "cuda", LABEL_CUDA, cuda, view.labels))
    spec = next((image for image in matrix.images if image.framework == framework.name), None)
    if spec is not None and LABEL_PYTHON in view.labels:
        checks.append(_label_check(subject, "python", LABEL_PYTHON, Version(spec.python), view.labels))
    # The toolkit's own wheels are in an image only when it was built with them.
    toolkit = frozenset(package.name for package in matrix.wheels)
    request = ScanRequest(
        distributions=frozenset(canonicalize_name(r.name) for r in requirements),
        optional_distributions=toolkit,
        files=frozenset({IMAGE_PINS_FILE}),
        library_patterns=() if quick else LIBNIXL_PATTERNS,
    )

    def report_layer(index: int, layer: Any) -> None:
        if on_layer is not None:
            on_layer(f"{subject}: layer {index + 1}/{len(view.layers)} {layer.name}")

    result = view.scan(request, on_layer=report_layer)
    checks.extend(
        _pins_file_checks(
            subject,
            result.files.get(IMAGE_PINS_FILE),
            release,
            framework,
            pins,
            python=None if spec is None else spec.python,
        )
    )
    checks.extend(_installed_checks(subject, result, requirements, release))
    for name in sorted(toolkit):
        for install in result.distributions.get(name, ()):
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected=f"=={release.version}",
                    found=str(install.version),
                    ok=install.version == release.version,
                    detail=f"installed at {install.path} (layer {install.layer}); {release.name}",
                )
            )
    if not quick:
        checks.append(
            Check(
                subject=subject,
                name="libnixl",
                expected="1 copy",
                found=f"{len(result.libraries)} copies",
                ok=len(result.libraries) == 1,
                detail=", ".join(result.libraries) or "no libnixl*.so in the image",
            )
        )
    checks.append(
        Check(
            subject=subject,
            name="layer paths",
            expected="no entry outside the root",
            found=f"{len(result.unsafe_paths)} unsafe",
            ok=not result.unsafe_paths,
            detail=", ".join(result.unsafe_paths[:5]) or "every entry stays inside the root",
        )
    )
    for problem in result.problems:
        collector.errors.append(f"{subject}: {problem}")
    collector.add(*checks)


# --------------------------------------------------------------------------- index


def check_index(
    releases: Sequence[Release],
    project_files: Callable[[str], Any],
    subject: str,
) -> list[Check]:
    """Every pinned version of ``releases`` exists on the index and is not yanked."""
    wanted: dict[tuple[NormalizedName, Version], list[str]] = {}
    for release in releases:
        for name, version in release.pins.items():
            wanted.setdefault((name, version), []).append(release.name)
    checks = []
    for (name, version), release_names in wanted.items():
        files = project_files(name)
        used_by = ", ".join(release_names)
        if not files.exists(version):
            near = _nearby_versions(sorted(files.files), version)
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected=f"{version} published",
                    found="(missing)",
                    ok=False,
                    detail=f"pinned by {used_by}; the index has {near}",
                )
            )
            continue
        reason = files.yanked_reason(version)
        checks.append(
            Check(
                subject=subject,
                name=name,
                expected=f"{version} published",
                found=f"{version} yanked" if reason is not None else str(version),
                ok=reason is None,
                detail=f"pinned by {used_by}"
                + (f"; yanked: {reason or 'no reason given'}" if reason is not None else ""),
            )
        )
    return checks


# --------------------------------------------------------------------------- everything


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOptions:
    releases: tuple[Release, ...] | None = None  # None: each subject's own release
    wheels: tuple[Path, ...] = ()
    images: tuple[str, ...] = ()
    pyprojects: tuple[Path, ...] = ()  # besides the meta packages the matrix names
    check_index: bool = False
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    platform: str | None = None  # only this platform of multi-arch images
    quick: bool = False  # stop reading images once pins are found; no libnixl count


def verify(
    matrix: Matrix,
    options: VerifyOptions,
    *,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Every check: the repository's pin consumers, then the artifacts given."""
    collector = Collector()
    step = on_step or (lambda _message: None)
    pyprojects: list[tuple[Path, WheelPackage | None]] = [
        (package.source / "pyproject.toml", package) for package in meta_packages(matrix)
    ]
    pyprojects += [(path, None) for path in options.pyprojects]
    for path, package in pyprojects:
        step(f"pyproject {path}")
        if not path.is_file():
            collector.errors.append(f"{path}: no such file (the meta package's pyproject.toml)")
            continue
        check_pyproject(matrix, path, package, options.releases, collector)
    for extra_check in _repository_checks():
        step(extra_check.__name__.strip("_").replace("_", " "))
        try:
            collector.add(*extra_check(matrix, options.releases))
        except BuildMatrixError as error:
            collector.errors.append(error.message)
    for wheel in options.wheels:
        step(f"wheel {wheel}")
        check_wheel(matrix, wheel, options.releases, collector)
    for reference in options.images:
        step(f"image {reference}")
        check_image(
            matrix,
            reference,
            options.releases,
            collector,
            platform=options.platform,
            quick=options.quick,
            on_layer=step,
        )
    if options.check_index:
        from buildmatrix.index import SimpleIndexClient, index_config

        config = index_config(options.index_url, options.extra_index_urls)
        client = SimpleIndexClient(config)
        step("index " + " ".join(config.urls))
        try:
            collector.add(
                *check_index(options.releases or matrix.releases, client.project, " ".join(config.urls))
            )
        except BuildMatrixError as error:
            collector.errors.append(error.message)
    return Report(
        checks=tuple(collector.checks),
        errors=tuple(collector.errors),
        notes=tuple(collector.notes),
    )


def _repository_checks() -> list[Callable[[Matrix, Sequence[Release] | None], list[Check]]]:
    """Checks of what other commands generate: the docs page and the image plan."""
    from buildmatrix.verify_generated import check_docs_page, check_image_plan

    return [check_docs_page, check_image_plan]


def _nearby_versions(known: Sequence[Version], version: Version) -> str:
    """The published versions around ``version``, to show what was probably meant."""
    if not known:
        return "no versions at all"
    position = bisect.bisect_left(known, version)
    return ", ".join(str(v) for v in known[max(0, position - 3) : position + 2])
