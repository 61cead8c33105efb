"""The repository check of a meta package whose requirements are generated at build time.

Nothing static can be compared then, so the package is really built, as
``buildmatrix wheels`` builds it (staged source, ``.buildmatrix/build.json``,
the local backend's PEP 517 frontend), in a temporary folder, and the wheel's
METADATA is compared exactly with the matrix like any meta wheel.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from buildmatrix.errors import BuildMatrixError
from buildmatrix.expand import TargetKind, WheelTarget, expand
from buildmatrix.model import Matrix, Release, WheelPackage
from buildmatrix.verify.report import Check, Collector
from buildmatrix.wheelmeta import WheelMetadata, read_wheel_metadata

__all__ = ["check_meta_build"]


def check_meta_build(
    matrix: Matrix, package: WheelPackage, source: Path, release: Release, collector: Collector
) -> None:
    """Build ``package`` (from ``source``) for ``release``; check the METADATA it wrote."""
    from buildmatrix.verify.extras import check_meta_metadata

    subject = f"{source} (as built for {release.name})"
    targets = [
        t
        for t in expand(matrix, releases=[release], kind=TargetKind.WHEEL).wheels()
        if t.package.name == package.name
    ]
    if not targets:
        collector.errors.append(f"{subject}: the matrix builds no {package.name} wheel for {release.name}")
        return
    metadata = _built_metadata(matrix, package, targets[0], source, subject=subject, collector=collector)
    if metadata is None:
        return
    collector.add(
        Check(
            subject=subject,
            name=metadata.name,
            expected=f"{package.name} {release.version}",
            found=f"{metadata.name} {metadata.version}",
            ok=(metadata.name, metadata.version) == (package.name, release.version),
            detail=f"name and version the build wrote ({release.name})",
        )
    )
    collector.add(*check_meta_metadata(matrix, subject, metadata, release, package, notes=collector.notes))


def _built_metadata(
    matrix: Matrix,
    package: WheelPackage,
    target: WheelTarget,
    source: Path,
    *,
    subject: str,
    collector: Collector,
) -> WheelMetadata | None:
    """The METADATA of the wheel built for ``target`` in a temporary folder; None (and an
    error collected, with the log's tail) when it cannot be built."""
    from buildmatrix.wheels.buildinfo import build_info
    from buildmatrix.wheels.host import Host
    from buildmatrix.wheels.jobs import Unbuildable
    from buildmatrix.wheels.local import LocalBackend
    from buildmatrix.wheels.runner import _build as build_job  # the wheels job's own build step
    from buildmatrix.wheels.sources import read_source_tree

    with tempfile.TemporaryDirectory(prefix="buildmatrix-verify-") as work:
        log_path = Path(work) / "build.log"
        # A real file: the build's commands write their output to it.
        with log_path.open("w", encoding="utf-8") as log:
            try:
                job = LocalBackend(Host()).plan(target, Path(work))
                if isinstance(job, Unbuildable):
                    collector.errors.append(f"{subject}: cannot build it here: {job.reason}")
                    return None
                info = build_info(matrix, package, target.release)
                wheels = build_job(job, read_source_tree(source), info, log)
                if len(wheels) != 1:
                    msg = f"the build left {len(wheels)} wheels, expected one"
                    raise BuildMatrixError(msg)
                return read_wheel_metadata(wheels[0])
            except (BuildMatrixError, OSError) as error:
                message = error.message if isinstance(error, BuildMatrixError) else str(error)
                log.flush()
                lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                tail = "\n".join(lines[-15:])
                collector.errors.append(f"{subject}: building it failed: {message}\n{tail}".rstrip())
                return None
