"""``--check-index``: every pinned version is published on the index, and not yanked."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from buildmatrix.model import Release
from buildmatrix.verify.report import Check

__all__ = ["check_index"]


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


def _nearby_versions(known: Sequence[Version], version: Version) -> str:
    """The published versions around ``version``, to show what was probably meant."""
    if not known:
        return "no versions at all"
    position = bisect.bisect_left(known, version)
    return ", ".join(str(v) for v in known[max(0, position - 3) : position + 2])
