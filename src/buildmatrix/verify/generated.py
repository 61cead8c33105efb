"""Verify checks of what other commands generate from the matrix: the docs page and
the image build plan. Both are recomputed here and compared with what carries the
pins (the committed page; the plan's pins, build args and labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from buildmatrix.expand import image_pins
from buildmatrix.images.plan import (
    LABEL_FRAMEWORK,
    LABEL_PIN_PREFIX,
    LABEL_RELEASE,
    ImageOptions,
    plan_images,
)
from buildmatrix.model import Framework, Matrix, Release
from buildmatrix.verify.extras import parse_version
from buildmatrix.verify.report import Check

__all__ = ["PlannedImage", "check_docs_page", "check_image_plan"]


def check_docs_page(matrix: Matrix, releases: Sequence[Release] | None = None) -> list[Check]:
    """The committed support-matrix page is exactly what the matrix renders today."""
    from buildmatrix import docs

    path = matrix.root / docs.DEFAULT_OUT
    fresh = docs.render(matrix)
    try:
        committed: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        committed = None
    if committed == fresh:
        found, detail = "in sync", "matches a fresh render of the matrix"
    elif committed is None:
        found, detail = "(missing)", "run `buildmatrix docs` (or `nox -s docs`) and commit the page"
    else:
        stale = [
            line[1:].strip()
            for line in docs.diff(committed, fresh, str(path)).splitlines()
            if line.startswith("-") and not line.startswith("---")
        ]
        found = f"{len(stale)} stale lines"
        detail = "first stale line: " + (stale[0] if stale else "(only lines missing)")
        detail += "; run `buildmatrix docs` and commit the page"
    return [
        Check(
            subject=str(path),
            name="support-matrix",
            expected="a fresh render of the matrix",
            found=found,
            ok=committed == fresh,
            detail=detail,
        )
    ]


class PlannedImage(Protocol):
    """What verify reads of one build of the image plan (``buildmatrix.images.plan``)."""

    @property
    def name(self) -> str: ...
    @property
    def release(self) -> str: ...
    @property
    def framework(self) -> str: ...
    @property
    def args(self) -> Mapping[str, str]: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def pins(self) -> Mapping[str, str]: ...


def _planned_images(matrix: Matrix, releases: Sequence[Release] | None) -> list[PlannedImage]:
    builds: list[PlannedImage] = list(
        plan_images(matrix, list(releases or matrix.releases), list(matrix.frameworks), ImageOptions())
    )
    return builds


def _suffixed(labels: Mapping[str, str], prefix: str) -> dict[NormalizedName, str]:
    """Labels ``org.buildmatrix.pin.tensorrt-llm`` -> {``tensorrt-llm``: value} (names canonicalized)."""
    return {
        canonicalize_name(key.removeprefix(prefix)): value
        for key, value in labels.items()
        if key.startswith(prefix)
    }


def _pins_arg(args: Mapping[str, str]) -> tuple[dict[NormalizedName, str], dict[NormalizedName, str]]:
    """Build arg PINS ``vllm[flashinfer]==0.12.0 nixl[cu12]==0.8.0`` -> versions and extras by
    name. An entry that is not exactly ``name[extras]==version`` counts as found as written
    (or missing, when it names nothing), so its check fails; so does a name pinned twice."""
    versions: dict[NormalizedName, str] = {}
    extras: dict[NormalizedName, str] = {}
    for entry in args.get("PINS", "").split():
        try:
            requirement = Requirement(entry)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        specifiers = list(requirement.specifier)
        exact = len(specifiers) == 1 and specifiers[0].operator == "=="
        found = specifiers[0].version if exact and not (requirement.marker or requirement.url) else entry
        versions[name] = f"{versions[name]} and {found}" if name in versions else found
        extras[name] = ",".join(sorted(requirement.extras))
    return versions, extras


def check_image_plan(
    matrix: Matrix,
    releases: Sequence[Release] | None = None,
    builds: Sequence[PlannedImage] | None = None,
) -> list[Check]:
    """Every planned image build carries the release's pins in its pins, args and labels.

    ``builds`` default to ``buildmatrix.images.plan.plan_images`` for every framework
    of the selected releases."""
    if builds is None:
        builds = _planned_images(matrix, releases)
    checks: list[Check] = []
    for build in builds:
        checks.extend(_check_build(matrix, build))
    return checks


def _check_build(matrix: Matrix, build: PlannedImage) -> list[Check]:
    subject = f"image plan {build.name}"
    release = matrix.find_release(build.release)
    framework = next((f for f in matrix.frameworks if f.name == build.framework), None)
    if release is None or framework is None:
        return [
            Check(
                subject=subject,
                name="release/framework",
                expected="a release and a framework of the matrix",
                found=f"{build.release}/{build.framework}",
                ok=False,
                detail="the plan names something the matrix does not have",
            )
        ]
    return [
        *_pin_checks(subject, build, framework, release),
        *_label_checks(subject, build, framework, release),
    ]


def _pin_checks(subject: str, build: PlannedImage, framework: Framework, release: Release) -> list[Check]:
    """Each pin the image carries, in the plan's pins, its PINS arg and its labels; and the
    extras of its PINS arg."""
    checks = []
    requirements = {canonicalize_name(r.name): r for r in framework.image_requirements(release.pins)}
    arg_pins, arg_extras = _pins_arg(build.args)
    carriers = {
        "plan pins": {canonicalize_name(k): v for k, v in build.pins.items()},
        "build arg PINS": arg_pins,
        "label " + LABEL_PIN_PREFIX + "*": _suffixed(build.labels, LABEL_PIN_PREFIX),
    }
    for name, version in image_pins(framework, release).items():
        for where, values in carriers.items():
            raw = values.get(name)
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected=str(version),
                    found="(missing)" if raw is None else raw,
                    ok=parse_version(raw) == version,
                    detail=f"{where} ({release.name})",
                )
            )
        requirement = requirements.get(name)
        if requirement is not None and name in arg_extras:
            wanted = {canonicalize_name(e) for e in requirement.extras}
            got = {canonicalize_name(e) for e in arg_extras[name].split(",") if e}
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected=",".join(sorted(wanted)) or "(no extras)",
                    found=",".join(sorted(got)) or "(no extras)",
                    ok=wanted == got,
                    detail=f"build arg PINS extras ({release.name})",
                )
            )
    return checks


def _label_checks(subject: str, build: PlannedImage, framework: Framework, release: Release) -> list[Check]:
    """The release and framework labels, and the FRAMEWORK arg (the generic stage writes it
    into the image's pins file)."""
    carriers = (
        ("label", build.labels, LABEL_RELEASE, release.name),
        ("label", build.labels, LABEL_FRAMEWORK, framework.name),
        ("build arg", build.args, "FRAMEWORK", framework.name),
    )
    return [
        Check(
            subject=subject,
            name=key,
            expected=value,
            found=values.get(key, "(missing)"),
            ok=values.get(key) == value,
            detail=f"{where} ({release.name})",
        )
        for where, values, key, value in carriers
    ]
