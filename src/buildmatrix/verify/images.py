"""Built images against the matrix, read from their layers and never run.

Labels (release, framework, CUDA, Python, one per pin), the pins file
``/opt/buildmatrix/pins.json``, the versions of the installed distributions
(``*.dist-info/METADATA`` under site-packages), NIXL within the extras'
specifier, the toolkit's own wheels at the release's version, exactly one
libnixl, and no layer entry outside the root. Every blob read is checked
against its digest (a mismatch is a failed check naming the blob, and nothing
read from that image is judged); with ``--quick`` the layers left unread are
named and no check speaks for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from buildmatrix.errors import BuildMatrixError
from buildmatrix.expand import image_pins
from buildmatrix.images.plan import (
    LABEL_CUDA,
    LABEL_FRAMEWORK,
    LABEL_PIN_PREFIX,
    LABEL_PYTHON,
    LABEL_RELEASE,
)
from buildmatrix.images.plan import PINS_FILE as IMAGE_PINS_FILE
from buildmatrix.layers import (
    BlobDigestError,
    ImageView,
    ScanRequest,
    ScanResult,
    open_image,
)
from buildmatrix.model import Framework, ImageSpec, Matrix, Release
from buildmatrix.verify.extras import exact_version, parse_version
from buildmatrix.verify.report import Check, Collector

__all__ = ["LIBNIXL_PATTERNS", "check_image"]

# Basenames of the NIXL shared library itself (not its plugins or helper
# libraries); auditwheel renames bundled copies to ``libnixl-<hash>.so``.
LIBNIXL_PATTERNS = ("libnixl.so", "libnixl.so.*", "libnixl-*.so", "libnixl-*.so.*")


def _label_check(subject: str, name: str, label: str, expected: Version, labels: Mapping[str, str]) -> Check:
    raw = labels.get(label)
    found = parse_version(raw)
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
    checks = _pins_file_identity(subject, data, release, framework, python=python)
    for name, version in pins.items():
        found = parse_version(file_pins.get(name))
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


def _pins_file_identity(
    subject: str, data: Mapping[str, Any], release: Release, framework: Framework, *, python: str | None
) -> list[Check]:
    """The pins file names the release, framework, CUDA and Python the image is for."""
    where = f"{IMAGE_PINS_FILE}"
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
        found_cuda = parse_version(data.get("cuda"))
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
                ok=parse_version(data.get("python")) == Version(python),
                detail=f"{where}: python",
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
            exact = exact_version(requirement.specifier)
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
    tls_verify: bool = True,
) -> None:
    """Labels, pins file and installed distributions of every platform of one image."""
    try:
        with open_image(reference, platform=platform, tls_verify=tls_verify) as views:
            for view in views:
                try:
                    _check_view(matrix, view, releases, collector, quick=quick, on_layer=on_layer)
                except BlobDigestError as error:
                    collector.add(_blob_failure(view.subject, error))
    except BlobDigestError as error:
        collector.add(_blob_failure(reference, error))
    except BuildMatrixError as error:
        collector.errors.append(error.message)


def _blob_failure(subject: str, error: BlobDigestError) -> Check:
    """A blob whose bytes are not what its digest says: the image fails, naming it."""
    return Check(
        subject=subject,
        name=f"blob {error.blob}",
        expected=error.blob,
        found=error.found,
        ok=False,
        detail=error.message + "; nothing read from this image is judged",
    )


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
    requirements = framework.image_requirements(release.pins)
    spec = next((image for image in matrix.images if image.framework == framework.name), None)
    checks.extend(_pin_label_checks(subject, view, release, framework, pins, spec=spec))
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
    checks.extend(_toolkit_checks(subject, result, toolkit, release))
    checks.extend(_integrity_checks(subject, view, result, quick=quick))
    for problem in result.problems:
        collector.errors.append(f"{subject}: {problem}")
    collector.add(*checks)


def _pin_label_checks(
    subject: str,
    view: ImageView,
    release: Release,
    framework: Framework,
    pins: Mapping[NormalizedName, Version],
    *,
    spec: ImageSpec | None,
) -> list[Check]:
    """The pin labels, and the CUDA and Python labels where the image has them."""
    checks = [
        _label_check(subject, name, LABEL_PIN_PREFIX + name, version, view.labels)
        for name, version in pins.items()
    ]
    cuda = release.cuda.get(framework.name)
    if cuda is not None and LABEL_CUDA in view.labels:
        checks.append(_label_check(subject, "cuda", LABEL_CUDA, cuda, view.labels))
    if spec is not None and LABEL_PYTHON in view.labels:
        checks.append(_label_check(subject, "python", LABEL_PYTHON, Version(spec.python), view.labels))
    return checks


def _toolkit_checks(
    subject: str, result: ScanResult, toolkit: frozenset[NormalizedName], release: Release
) -> list[Check]:
    """Every copy of the toolkit's own wheels in the image has the release's version."""
    return [
        Check(
            subject=subject,
            name=name,
            expected=f"=={release.version}",
            found=str(install.version),
            ok=install.version == release.version,
            detail=f"installed at {install.path} (layer {install.layer}); {release.name}",
        )
        for name in sorted(toolkit)
        for install in result.distributions.get(name, ())
    ]


def _integrity_checks(subject: str, view: ImageView, result: ScanResult, *, quick: bool) -> list[Check]:
    """One libnixl (unless --quick), no path out of the root, every blob read verified."""
    checks: list[Check] = []
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
    read = result.layers_total - len(result.layers_skipped)
    unread = (
        f"; not read (--quick): {', '.join(f'layer {name}' for name in result.layers_skipped)}"
        if result.layers_skipped
        else ""
    )
    checks.append(
        Check(
            subject=subject,
            name="layer paths",
            expected="no entry outside the root",
            found=f"{len(result.unsafe_paths)} unsafe",
            ok=not result.unsafe_paths,
            detail=", ".join(result.unsafe_paths[:5])
            or (
                "every entry stays inside the root"
                if not result.layers_skipped
                else f"every entry of the {read} layer(s) read stays inside the root{unread}"
            ),
        )
    )
    checks.append(_blob_digest_check(subject, view, result, read=read, unread=unread))
    return checks


def _blob_digest_check(subject: str, view: ImageView, result: ScanResult, *, read: int, unread: str) -> Check:
    blobs = [f"{result.blobs_verified} of {result.layers_total} layers"]
    if view.config_digest:
        blobs.insert(0, "config")
    if view.manifest_digest:
        blobs.insert(0, "manifest")
    return Check(
        subject=subject,
        name="blob digests",
        expected="every blob read matches its digest",
        found=(", ".join(blobs[:-1]) + " and " if len(blobs) > 1 else "") + blobs[-1] + " verified",
        # Every layer the scan opened was verified to its end (or the scan failed).
        ok=result.blobs_verified == read,
        detail=(view.manifest_digest or view.config_digest) + unread,
    )
