"""buildmatrix.installs.resolve: a source-only package is reported, the rest still resolved; an as-of date."""

from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from buildmatrix.installs.resolve import resolve
from tests.support.localindex import Served


def test_source_only_package_is_reported_and_the_rest_still_resolved(
    index: Served, built: dict[str, Path]
) -> None:
    resolution = resolve(
        "ai-dynamo[vllm]==0.7.1", python="3.12", arch="x86_64", glibc=Version("2.28"), indexes=[index.url]
    )
    assert resolution.resolved, resolution.error
    assert [(s.name, s.version) for s in resolution.source_only] == [("srconly", "1.0")]
    assert resolution.source_only[0].requires == ("helper==2.0", 'never-installed; extra == "docs"')
    # The sdist's static dependency was resolved; its extra-only one was not.
    assert set(resolution.pins) == {"ai-dynamo", "underclaim", "patched", "helper"}
    assert {w.filename for w in resolution.wheels} >= {built[name].name for name in ("underclaim", "patched")}


def test_as_of_a_date_before_every_upload_resolves_nothing(index: Served) -> None:
    import datetime

    before = resolve(
        "ai-dynamo[sglang]==0.7.1",
        python="3.12",
        arch="x86_64",
        glibc=Version("2.28"),
        indexes=[index.url],
        as_of=datetime.date(2024, 12, 31),  # the test index's files are uploaded 2025-01-01
    )
    assert not before.resolved
    after = resolve(
        "ai-dynamo[sglang]==0.7.1",
        python="3.12",
        arch="x86_64",
        glibc=Version("2.28"),
        indexes=[index.url],
        as_of=datetime.date(2025, 1, 1),
    )
    assert after.resolved, after.error
