"""The wheels job: build every wheel target of the matrix, audit it, publish it with a manifest.

Modules, one job each:

- ``buildinfo``: the metadata generated for a package and release (version,
  runtime requirement, framework extras), written into the staged source.
- ``sources``: a package's file set, its content digest and git provenance.
- ``host``: what this machine has (arch, interpreters, compiler, engines).
- ``jobs``: the unit of work both backends produce.
- ``local`` / ``cibw``: the two backends.
- ``outputs``: the output folder (atomic publish, manifest, logs, rejected/).
- ``runner``: the pipeline from selection to report.
"""

from __future__ import annotations

from buildmatrix.wheels.runner import (
    BACKENDS,
    Report,
    Status,
    TargetResult,
    WheelsRequest,
    run_wheels,
)

__all__ = ["BACKENDS", "Report", "Status", "TargetResult", "WheelsRequest", "run_wheels"]
