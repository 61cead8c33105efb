"""``verify --wheel WHEELHOUSE``: the release record in ``manifest.json`` is complete and current.

For each selected release (default: the releases the last run asked for), every
wheel target the matrix expands to must have a manifest entry whose wheel is in
the folder with the recorded sha256, and whose inputs (package source, the
generated build metadata, the target itself) are what they are today: a wheel
built from other inputs is stale, one the last run failed to rebuild is failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from buildmatrix.errors import BuildMatrixError
from buildmatrix.expand import TargetKind, WheelTarget, expand
from buildmatrix.model import Matrix, Release, WheelPackage
from buildmatrix.verify.report import Check, Collector

__all__ = ["check_release_record"]


def check_release_record(
    matrix: Matrix, folder: Path, releases: Sequence[Release] | None, collector: Collector
) -> None:
    from buildmatrix.wheels.outputs import MANIFEST, manifest_problem

    manifest = folder / MANIFEST
    subject = str(manifest)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        entries_list = data["wheels"]
        if not isinstance(entries_list, list):
            raise TypeError("wheels is not a list")
    except (OSError, ValueError, KeyError, TypeError) as error:
        collector.add(_fail(subject, "(manifest)", "a readable manifest", f"unreadable: {error}", ""))
        return
    entries: dict[str, dict[str, Any]] = {}
    for entry in entries_list:
        problem = manifest_problem(folder, entry)
        if problem:
            collector.add(_fail(subject, "(manifest)", "plain wheel names inside the folder", problem, ""))
            continue
        entries[entry["target"]] = entry
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    rows = {row.get("target"): row for row in run.get("targets", []) if isinstance(row, dict)}
    if releases:
        chosen = list(releases)
    else:
        named = [matrix.find_release(str(name)) for name in run.get("releases", [])]
        chosen = [r for r in named if r is not None]
        if not chosen:
            collector.add(
                _fail(subject, "(release)", "a release to check", "the record names none", "use --release")
            )
            return
    sources: dict[Path, Any] = {}
    for release in chosen:
        for target in expand(matrix, releases=[release], kind=TargetKind.WHEEL).wheels():
            collector.add(
                _check_target(
                    matrix, folder, target, entry=entries.get(target.id), rows=rows, sources=sources
                )
            )


def _check_target(
    matrix: Matrix,
    folder: Path,
    target: WheelTarget,
    *,
    entry: dict[str, Any] | None,
    rows: dict[Any, dict[str, Any]],
    sources: dict[Path, Any],
) -> Check:
    from buildmatrix.wheels.outputs import MANIFEST, sha256_of

    subject = str(folder / MANIFEST)
    expected = f"a current wheel of {target.release.name}"
    row = rows.get(target.id)
    last = (
        ""
        if row is None
        else f"last run: {row.get('status')}" + (f" ({row['reason']})" if row.get("reason") else "")
    )
    if entry is None:
        return _fail(subject, target.id, expected, "(missing)", last or "no run recorded this target")
    if row is not None and row.get("status") in ("failed", "rejected"):
        return _fail(subject, target.id, expected, f"{row.get('status')}", last)
    name = str(entry["filename"])
    wheel = folder / name
    if not wheel.is_file():
        return _fail(
            subject, target.id, expected, f"{name} (missing)", "the manifest names a wheel not in the folder"
        )
    digest = sha256_of(wheel)
    if digest != entry.get("sha256"):
        return _fail(
            subject,
            target.id,
            expected,
            name,
            f"sha256 {digest} differs from the recorded {entry.get('sha256')}",
        )
    return _inputs_check(matrix, folder, target, entry, sources, subject=subject, expected=expected)


def _inputs_check(
    matrix: Matrix,
    folder: Path,
    target: WheelTarget,
    entry: dict[str, Any],
    sources: dict[Path, Any],
    *,
    subject: str,
    expected: str,
) -> Check:
    """A recorded, present wheel whose inputs (source, matrix, toolchain) are what they were."""
    name = str(entry["filename"])
    try:
        now = _inputs_now(matrix, folder, target, target.package, sources)
    except BuildMatrixError as error:
        return _fail(subject, target.id, expected, name, f"cannot read its inputs: {error.message}")
    recorded = entry.get("inputs")
    if not isinstance(recorded, dict):
        return _fail(
            subject, target.id, expected, f"{name} (stale)", "built without a record of its inputs; rebuild"
        )
    changed = sorted(key for key, value in now.items() if recorded.get(key) != value)
    if changed:
        return _fail(
            subject,
            target.id,
            expected,
            f"{name} (stale)",
            f"changed since it was built: {', '.join(changed)}",
        )
    return Check(
        subject=subject,
        name=target.id,
        expected=expected,
        found=name,
        ok=True,
        detail="recorded, present, sha256 and inputs current",
    )


def _inputs_now(
    matrix: Matrix, folder: Path, target: WheelTarget, package: WheelPackage, sources: dict[Path, Any]
) -> dict[str, str]:
    from buildmatrix.wheels.buildinfo import build_info
    from buildmatrix.wheels.runner import target_inputs
    from buildmatrix.wheels.sources import read_source_tree

    if package.source not in sources:
        sources[package.source] = read_source_tree(package.source, exclude=(folder,))
    return target_inputs(target, sources[package.source], build_info(matrix, package, target.release))


def _fail(subject: str, name: str, expected: str, found: str, detail: str) -> Check:
    return Check(subject=subject, name=name, expected=expected, found=found, ok=False, detail=detail)
