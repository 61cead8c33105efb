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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from buildmatrix.errors import BuildMatrixError
from buildmatrix.model import Matrix, Release, WheelPackage
from buildmatrix.verify.extras import check_pyproject, check_wheel, meta_packages
from buildmatrix.verify.images import check_image
from buildmatrix.verify.published import check_index
from buildmatrix.verify.report import Check, Collector, Report

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
            tls_verify=options.tls_verify,
        )
    if options.check_index:
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
    return Report(
        checks=tuple(collector.checks),
        errors=tuple(collector.errors),
        notes=tuple(collector.notes),
    )


def _repository_checks() -> list[Callable[[Matrix, Sequence[Release] | None], list[Check]]]:
    """Checks of what other commands generate: the docs page and the image plan."""
    from buildmatrix.verify.generated import check_docs_page, check_image_plan

    return [check_docs_page, check_image_plan]
