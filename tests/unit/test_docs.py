"""The support-matrix page: every table of the reference, generated, deterministic, drift-checked."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from buildmatrix import docs
from buildmatrix.loader import load_matrix, parse_matrix
from buildmatrix.model import Matrix

# Well after every date in the real matrix; the page itself never depends on it.
TODAY = datetime.date(2026, 11, 28)


def _section(page: str, heading: str) -> str:
    """The text from ``heading`` to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = page.index(heading + "\n")
    following = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE)
    match = following.search(page, start + len(heading) + 1)
    return page[start : match.start() if match else len(page)]


def _table_rows(text: str) -> list[list[str]]:
    """Rows of the first Markdown table in ``text`` (header first, separator dropped)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            if not all(set(cell) <= {":", "-"} for cell in cells):
                rows.append(cells)
        elif rows:
            break
    return rows


@pytest.fixture(scope="module")
def page(real_matrix: Matrix) -> str:
    return docs.render(real_matrix)


def test_committed_page_is_in_sync(real_matrix: Matrix, repo_root: Path) -> None:
    committed = (repo_root / "docs" / "support-matrix.md").read_text(encoding="utf-8")
    assert committed == docs.render(real_matrix), (
        "docs/support-matrix.md is stale: run `nox -s docs` (or `buildmatrix docs`) and commit it"
    )


def test_render_is_deterministic(real_matrix: Matrix, repo_root: Path) -> None:
    reloaded = load_matrix(repo_root / "matrix.toml")
    assert docs.render(real_matrix) == docs.render(reloaded) == docs.render(real_matrix)


def test_header_says_generated_do_not_edit(page: str) -> None:
    first = page.splitlines()[:4]
    assert any("Generated from matrix.toml" in line and "do not edit" in line for line in first)


def test_build_dependency_table_has_every_release_column_in_matrix_order(
    page: str, real_matrix: Matrix
) -> None:
    rows = _table_rows(_section(page, "### Build Dependency"))
    header = rows[0]
    assert header == [
        "**Dependency**",
        "**main (ToT)**",
        "**v0.8.0 (unreleased)**",
        "**v0.7.1**",
        "**v0.7.0.post1**",
        "**v0.7.0**",
    ]
    by_name = {row[0]: row[1:] for row in rows[1:]}
    # The reference's pins, column by column.
    assert by_name["SGLang"] == ["0.5.6", "0.5.6.post1", "0.5.3.post4", "0.5.3.post4", "0.5.3.post4"]
    assert by_name["TensorRT-LLM"] == ["1.2.0rc5", "1.2.0rc6", "1.2.0rc3", "1.2.0rc3", "1.2.0rc2"]
    assert by_name["vLLM"] == ["0.12.0", "0.12.0", "0.11.0", "0.11.0", "0.11.0"]
    assert by_name["NIXL"] == ["0.8.0", "0.8.0", "0.7.1", "0.7.1", "0.7.1"]
    assert by_name["Release status"][1] == "planned 2025-01-14"
    # And it is the matrix talking, not a copy: every release's every pin is in its column.
    for column, release in enumerate(real_matrix.releases):
        for dependency in real_matrix.dependencies:
            assert by_name[dependency.display][column] == str(release.pins[dependency.name])


def test_hardware_and_gpu_tables_show_arches_and_sm_numbers(page: str) -> None:
    cpu = _table_rows(_section(page, "## Hardware Compatibility"))
    assert [row[0] for row in cpu[1:]] == ["**x86_64**", "**ARM64**"]
    assert all(row[-1] == "Supported" for row in cpu[1:])
    gpu = {row[0]: row[1:] for row in _table_rows(_section(page, "### GPU Compatibility"))[1:]}
    assert gpu["**NVIDIA Blackwell Architecture**"][0] == "10.0 (`sm_100`), 12.0 (`sm_120`)"
    assert gpu["**NVIDIA Hopper Architecture**"][0] == "9.0 (`sm_90`)"
    assert gpu["**NVIDIA Ada Lovelace Architecture**"][0] == "8.9 (`sm_89`)"
    assert gpu["**NVIDIA Ampere Architecture**"][0] == "8.0 (`sm_80`), 8.6 (`sm_86`)"
    assert 'TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0;10.0;12.0"' in page


def test_platform_table_and_its_note_and_caution(page: str) -> None:
    section = _section(page, "## Platform Architecture Compatibility")
    rows = _table_rows(section)[1:]
    assert rows == [
        ["**Ubuntu**", "22.04", "x86_64", "Supported"],
        ["**Ubuntu**", "24.04", "x86_64", "Supported"],
        ["**Ubuntu**", "24.04", "ARM64", "Supported"],
        ["**CentOS Stream**", "9", "x86_64", "Experimental"],
    ]
    # The two platform rules share one caution, after the free-text note, as in the reference.
    assert (
        "> [!Caution]\n> KV Block Manager is supported only with Python 3.12. "
        "Python 3.12 support is currently limited to Ubuntu 24.04.\n"
    ) in section
    assert section.index("> [!Note]\n> Wheels are built") < section.index("> [!Caution]")


def test_runtime_table_has_glibc_and_cuda_floors(page: str) -> None:
    rows = _table_rows(_section(page, "### Runtime Dependency"))
    assert rows[0] == ["**Python Package**", "**Version**", "**glibc version**", "**CUDA Version**"]
    assert rows[1:] == [
        ["ai-dynamo", "0.8.0", ">=2.28", ""],
        ["ai-dynamo-runtime", "0.8.0", ">=2.28 (Python 3.12 has known issues)", ""],
        ["NIXL", "0.7.1", ">=2.27", ">=11.8"],
    ]


def test_rule_messages_land_in_their_sections(page: str, real_matrix: Matrix) -> None:
    trtllm = next(r for r in real_matrix.rules if r.id == "trtllm-not-python-3.11")
    build_deps = _section(page, "### Build Dependency")
    assert f"> [!Important]\n> {trtllm.message}\n" in build_deps
    assert page.count(trtllm.message) == 1
    cloud = _section(page, "## Cloud Service Provider Compatibility")
    assert "> [!Caution]\n> There is a known issue with the TensorRT-LLM framework" in cloud


def test_cuda_table_says_where_inherited_values_come_from(page: str) -> None:
    section = _section(page, "### CUDA Support by Framework")
    rows = {row[0]: row[1:] for row in _table_rows(section)[1:]}
    assert rows["**Dynamo v0.7.1**"] == ["CUDA 12.8", "CUDA 13.0", "CUDA 12.8", "stated for this release"]
    for name in ("main (ToT)", "v0.8.0 (unreleased)", "v0.7.0.post1", "v0.7.0"):
        assert rows[f"**Dynamo {name}**"][-1] == "inherited from v0.7.1"
    assert "stated in matrix.toml for v0.7.1 only" in section


def test_cloud_and_build_support(page: str) -> None:
    cloud = _section(page, "### AWS")
    assert _table_rows(cloud)[1] == ["**Amazon Linux**", "2023", "x86_64", "Supported¹"]
    support = _section(page, "## Build Support")
    for text in (
        "- **Wheels**: We distribute Python wheels",
        "  - [kvbm](https://pypi.org/project/kvbm/) (on the package index as `kvbm`): New as of",
        "(image `tensorrtllm-runtime`)",
        "- **Helm Charts**:",
        "  - [dynamo-llm](https://crates.io/crates/dynamo-llm/)",
    ):
        assert text in support
    wheels = {row[0]: row for row in _table_rows(_section(page, "### Artifacts per release"))[1:]}
    # Rules applied: kvbm only for 3.12; abi3 and pure wheels tagged as such.
    assert (
        wheels["`kvbm`"][-1] == "`cp312-cp312-manylinux_2_28_x86_64`<br>`cp312-cp312-manylinux_2_28_aarch64`"
    )
    assert wheels["`ai-dynamo`"][-1] == "`py3-none-any`"
    assert "cp310-abi3-manylinux_2_28_aarch64" in wheels["`ai-dynamo-runtime`"][-1]


def test_golden_render_of_a_small_matrix(tmp_path: Path, golden: Callable[[str, str], None]) -> None:
    """Format pinned on a small matrix with the awkward cases: a pipe in a table
    cell, an inherited CUDA table, a multi-paragraph note, a rule in the runtime section.
    BUILDMATRIX_REGENERATE=1 rewrites it."""
    golden("support-matrix-small.md", docs.render(_small_matrix(tmp_path)))


def test_real_matrix_warns_that_v080_is_planned_before_the_releases_it_follows(
    real_matrix: Matrix,
) -> None:
    found = docs.warnings(real_matrix, today=TODAY)
    planned = [w for w in found if w.startswith("release v0.8.0")]
    assert len(planned) == 1
    assert "2025-01-14" in planned[0]
    assert "v0.7.1, v0.7.0.post1, v0.7.0" in planned[0]
    # main lags the upcoming release on two pins: also suspicious, also reported.
    assert "release main pins sglang 0.5.6, older than 0.5.6.post1 in v0.8.0" in " ".join(found)
    assert "release main pins tensorrt-llm 1.2.0rc5, older than 1.2.0rc6" in " ".join(found)


def test_no_planned_date_warning_for_a_future_date(real_matrix: Matrix) -> None:
    found = docs.warnings(real_matrix, today=datetime.date(2024, 12, 1))
    assert not [w for w in found if w.startswith("release v0.8.0")]


def test_warns_when_planned_before_a_dated_release_it_follows(real_matrix: Matrix) -> None:
    main, v080, *rest = real_matrix.releases
    # Date `main` too, later than v0.8.0: v0.8.0 precedes main in the columns yet main is dated after.
    older = dataclasses.replace(v080, planned=datetime.date(2026, 3, 1))
    newer = dataclasses.replace(main, planned=datetime.date(2026, 2, 1))
    matrix = dataclasses.replace(real_matrix, releases=(newer, older, *rest))
    found = docs.warnings(matrix, today=datetime.date(2026, 1, 1))
    assert any(
        w.startswith("release main is planned for 2026-02-01, before v0.8.0 (2026-03-01)") for w in found
    )


def test_warns_about_a_glibc_floor_below_the_wheel_policy(real_matrix: Matrix) -> None:
    runtime = tuple(
        dataclasses.replace(p, glibc=type(p.glibc)("2.17")) if p.name == "ai-dynamo-runtime" else p
        for p in real_matrix.runtime_packages
    )
    found = docs.warnings(dataclasses.replace(real_matrix, runtime_packages=runtime), today=TODAY)
    assert any("ai-dynamo-runtime documents glibc >=2.17" in w and "manylinux_2_28" in w for w in found)


def test_warns_about_a_rule_placed_in_no_section(real_matrix: Matrix) -> None:
    rules = (dataclasses.replace(real_matrix.rules[0], section="nowhere"), *real_matrix.rules[1:])
    matrix = dataclasses.replace(real_matrix, rules=rules)
    found = docs.warnings(matrix, today=TODAY)
    assert any("rule trtllm-not-python-3.11 names section 'nowhere'" in w for w in found)
    assert real_matrix.rules[0].message not in docs.render(matrix)


def test_consistent_small_matrix_has_no_warnings(tmp_path: Path) -> None:
    assert docs.warnings(_small_matrix(tmp_path), today=TODAY) == []


SMALL = """
schema = 1

[project]
name = "Tiny"
source = "https://example.com/tiny"

[[arch]]
name = "x86_64"
platform = "linux/amd64"
display = "x86_64"
status = "Supported"

[[gpu]]
name = "Hopper"
display = "NVIDIA Hopper Architecture"
sm = ["9.0"]
status = "Supported"

[[os]]
id = "ubuntu-24.04"
name = "Ubuntu"
version = "24.04"
arch = "x86_64"
status = "Supported"

[[cloud]]
provider = "Cloud One"
os = "Linux | Edge"
version = "1"
arch = "x86_64"
status = "Experimental"

[[runtime]]
name = "tiny"
version = "1.1.0"
glibc = "2.28"

[dependency.vllm]
display = "vLLM"

[dependency.nixl]
display = "NIXL"

[framework.vllm]
display = "vLLM"
distribution = "vllm"
extra = "vllm"
requires = ["vllm=={vllm}"]

[[release]]
name = "v1.1.0"
status = "unreleased"
version = "1.1.0"
planned = 2030-01-01
pins = { vllm = "0.12.0", nixl = "0.8.0" }
cuda = { inherit = "v1.0.0" }

[[release]]
name = "v1.0.0"
status = "released"
version = "1.0.0"
pins = { vllm = "0.11.0", nixl = "0.7.1" }
cuda = { vllm = "12.8" }

[manylinux]
policy = "manylinux_2_28"
images = { x86_64 = "quay.io/pypa/manylinux_2_28_x86_64:2025.11.09-1" }

[wheel.tiny]
kind = "native"
source = "tiny"
python = ["3.11", "3.12"]
arch = ["x86_64"]
policy = "manylinux_2_28"
abi3 = false

[cuda_base_images]
"12.8" = "nvcr.io/nvidia/cuda:12.8.1-runtime-ubuntu24.04"

[image.vllm]
name = "vllm-runtime"
dockerfile = "Dockerfile"
target = "runtime"
python = "3.12"
os = "ubuntu-24.04"
arch = ["x86_64"]

[[rule]]
id = "no-3.11"
when = { package = ["tiny"] }
forbid = { python = ["3.11"] }
admonition = "Warning"
section = "runtime-dependencies"
message = "Tiny is not built for Python 3.11."

[[note]]
section = "platform"
admonition = "Note"
text = '''First paragraph.

Second paragraph.'''

[[build_support]]
title = "Wheels"
description = "On the index:"
items = [{ name = "tiny", url = "https://pypi.org/project/tiny/" }]
"""


def _small_matrix(tmp_path: Path) -> Matrix:
    path = tmp_path / "matrix.toml"
    return parse_matrix(SMALL, path)


def test_a_missing_pin_is_shown_as_missing_and_warned_about(real_matrix: Matrix) -> None:
    main, *rest = real_matrix.releases
    pins = {name: version for name, version in main.pins.items() if name != "nixl"}
    matrix = dataclasses.replace(real_matrix, releases=(dataclasses.replace(main, pins=pins), *rest))
    rows = {row[0]: row[1:] for row in _table_rows(_section(docs.render(matrix), "### Build Dependency"))}
    assert rows["NIXL"] == [docs.MISSING, "0.8.0", "0.7.1", "0.7.1", "0.7.1"]
    assert "release main has no pin for nixl: the page shows —" in docs.warnings(matrix, today=TODAY)
