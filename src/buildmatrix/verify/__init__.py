"""``buildmatrix verify``: prove that every place a pin appears agrees with the matrix.

Each check compares one distribution (or label, or file) in one subject (a
pyproject.toml, a wheel, an image, the image plan, the docs page, the index)
with what the matrix says, using ``packaging`` only. Every check is collected;
none stops the others. Input that cannot be read (a broken wheel, a missing
image, an unreachable index) is recorded as an error (exit 2) while the other
checks still run and are reported.

Modules: ``report`` (Check, Report), ``extras`` (pyproject and wheel extras),
``images`` (built images), ``generated`` (docs page, image plan), ``published``
(the package index).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from buildmatrix.errors import BuildMatrixError
from buildmatrix.model import Matrix, Release, WheelPackage
from buildmatrix.redact import redact
from buildmatrix.verify.extras import check_pyproject, check_wheel, meta_packages
from buildmatrix.verify.images import check_image
from buildmatrix.verify.published import check_index
from buildmatrix.verify.record import check_release_record
from buildmatrix.verify.report import Check, Collector, Report
from buildmatrix.wheels.outputs import MANIFEST

__all__ = ["Check", "Report", "VerifyOptions", "verify"]


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
    tls_verify: bool = True  # docker:// images: False accepts an unverified or plain-HTTP registry


def verify(
    matrix: Matrix,
    options: VerifyOptions,
    *,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Every check: the repository's pin consumers, then the artifacts given."""
    collector = Collector()
    report_step = on_step or (lambda _message: None)

    def step(message: str) -> None:
        report_step(redact(message))

    _check_repository(matrix, options, collector, step)
    artifacts = _check_artifacts(matrix, options, collector, step)
    if options.check_index:
        _check_index(matrix, options, collector, step)
    return _redacted_report(collector, artifacts)


def _check_repository(
    matrix: Matrix, options: VerifyOptions, collector: Collector, step: Callable[[str], None]
) -> None:
    """The repository's pin consumers: the meta packages' (and other) pyprojects, then the
    generated files and committed results."""
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


def _check_artifacts(
    matrix: Matrix, options: VerifyOptions, collector: Collector, step: Callable[[str], None]
) -> int:
    """The wheels and images given; how many artifacts there were."""
    artifacts = 0
    for given in options.wheels:
        for wheel, checked in _wheel_artifacts(matrix, given, options.releases, collector):
            artifacts += 1
            step(f"wheel {wheel}")
            with _must_check(collector, wheel):
                checked()
    for reference in options.images:
        artifacts += 1
        step(f"image {reference}")
        with _must_check(collector, reference):
            check_image(
                matrix,
                reference,
                options.releases,
                collector,
                platform=options.platform,
                quick=options.quick,
                on_layer=step,
                tls_verify=options.tls_verify,
            )
    return artifacts


def _check_index(
    matrix: Matrix, options: VerifyOptions, collector: Collector, step: Callable[[str], None]
) -> None:
    from buildmatrix.verify.index import SimpleIndexClient, index_config

    config = index_config(options.index_url, options.extra_index_urls)
    client = SimpleIndexClient(config)
    step("index " + " ".join(config.urls))
    try:
        collector.add(
            *check_index(options.releases or matrix.releases, client.project, " ".join(config.urls))
        )
    except BuildMatrixError as error:
        collector.errors.append(error.message)


def _redacted_report(collector: Collector, artifacts: int) -> Report:
    # Index URLs may carry credentials: nothing leaves verify unredacted.
    return Report(
        checks=tuple(
            replace(
                c,
                subject=redact(c.subject),
                expected=redact(c.expected),
                found=redact(c.found),
                detail=redact(c.detail),
            )
            for c in collector.checks
        ),
        errors=tuple(redact(e) for e in collector.errors),
        notes=tuple(redact(n) for n in collector.notes),
        artifacts=artifacts,
    )


@contextlib.contextmanager
def _must_check(collector: Collector, artifact: object) -> Iterator[None]:
    """An artifact that yields neither a check nor an error fails: it was given to be checked."""
    before = (len(collector.checks), len(collector.errors))
    yield
    if (len(collector.checks), len(collector.errors)) == before:
        collector.add(
            Check(
                subject=str(artifact),
                name="(artifact)",
                expected="checks for the selected release",
                found="nothing checked",
                ok=False,
                detail="no check applies to this artifact",
            )
        )


def _wheel_artifacts(
    matrix: Matrix, given: Path, releases: Sequence[Release] | None, collector: Collector
) -> Iterator[tuple[Path, Callable[[], None]]]:
    """Each wheel a ``--wheel`` argument stands for, with its check: a folder stands for
    the wheels in it and, when it holds a ``manifest.json``, for its release record."""
    if not given.is_dir():
        if not given.exists():
            collector.errors.append(f"--wheel {given}: no such file or folder")
            return
        yield given, lambda: check_wheel(matrix, given, releases, collector)
        return
    wheels = sorted(p for p in given.glob("*.whl") if p.is_file())
    manifest = given / MANIFEST
    if manifest.is_file():
        yield manifest, lambda: check_release_record(matrix, given, releases, collector)
    elif not wheels:
        collector.add(
            Check(
                subject=str(given),
                name="(folder)",
                expected="wheels (*.whl files) to check",
                found="no wheel files",
                ok=False,
                detail="the folder holds no wheel and no manifest.json: nothing to verify",
            )
        )
    recorded = _recorded_releases(manifest) if manifest.is_file() else None
    selected = None if releases is None else {r.name for r in releases}
    for wheel in wheels:
        if recorded is not None and wheel.name in recorded:
            owner = recorded[wheel.name]
            if selected is not None and owner not in selected:
                # A wheelhouse holds several releases; the record check covers the selected ones.
                collector.notes.append(f"{wheel}: recorded for release {owner}, not selected")
                continue
        elif recorded is not None:
            collector.add(
                Check(
                    subject=str(wheel),
                    name="(record)",
                    expected=f"recorded in {manifest}",
                    found="not recorded",
                    ok=False,
                    detail="a wheel in the published folder that no run recorded (unknown provenance)",
                )
            )
        yield wheel, functools.partial(check_wheel, matrix, wheel, releases, collector)


def _recorded_releases(manifest: Path) -> dict[str, str]:
    """File name -> release of each manifest entry (an unreadable manifest: none; the
    release record check reports it)."""
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["wheels"]
        return {str(e["filename"]): str(e["release"]) for e in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _repository_checks() -> list[Callable[[Matrix, Sequence[Release] | None], list[Check]]]:
    """Checks of what other commands generate: the docs page and the image plan."""
    from buildmatrix.installs.results import check_results
    from buildmatrix.verify.generated import check_docs_page, check_image_plan

    return [check_docs_page, check_image_plan, check_results]
