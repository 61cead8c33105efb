"""buildmatrix installs on the command line: resolution and cells against a PEP 503/691 index on
127.0.0.1 (tests/support/localindex.py), with range support and without.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.support.installs import _cells
from tests.support.localindex import Served


def test_cli_cells_floor_set_by_underclaims_and_verdicts(
    cli: Callable[..., Result], index: Served, built: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        "installs",
        "--release",
        "v0.7.1",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--extra",
        "vllm",
        "--extra",
        "sglang",
        "--glibc",
        "2.28",
        "2.35",
        "--index-url",
        index.url,
        "--cache",
        tmp_path / "cache",
        "--format",
        "json",
    )
    assert result.code == 1, result.err  # vllm fails: a source-only package, a 2.29 need at 2.28
    cells = {(c["extra"], c["target_glibc"]): c for c in _cells(result)}
    assert set(cells) == {("vllm", "2.28"), ("vllm", "2.35"), ("sglang", "2.28"), ("sglang", "2.35")}
    fields = [
        "release",
        "extra",
        "python",
        "arch",
        "target_glibc",
        "resolved",
        "floor",
        "set_by",
        "source_only",
        "underclaims",
        "wheels",
        "bytes_read",
        "ok",
    ]
    assert all(list(cell) == fields for cell in cells.values())
    vllm = cells[("vllm", "2.28")]
    assert vllm["resolved"] is True
    assert vllm["floor"] == "2.29"
    assert vllm["set_by"] == {"wheel": built["underclaim"].name, "member": "underclaim/_fast.so"}
    assert vllm["source_only"] == ["srconly==1.0"]
    assert vllm["underclaims"] == [
        {"wheel": built["underclaim"].name, "tag": "2.17", "needs": "2.29", "member": "underclaim/_fast.so"}
    ]
    assert vllm["wheels"] == 2
    assert vllm["ok"] is False
    assert cells[("vllm", "2.35")]["floor"] == "2.29"
    assert cells[("vllm", "2.35")]["ok"] is False  # still source only
    sglang = cells[("sglang", "2.28")]
    assert sglang["floor"] == "2.17"  # the tag promises more than the library needs (2.2.5)
    assert sglang["set_by"] is None
    assert sglang["ok"] is True
    assert cells[("sglang", "2.35")]["ok"] is True
    assert "srconly has no wheel and no static metadata" not in result.err
    assert "this sdist was built" not in result.err


def test_cli_failed_resolution_is_a_finding(
    cli: Callable[..., Result], index: Served, tmp_path: Path
) -> None:
    result = cli(
        "installs",
        "--release",
        "v0.7.0",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--extra",
        "sglang",
        "--glibc",
        "2.28",
        "--index-url",
        index.url,
        "--no-cache",
        "--format",
        "json",
    )
    assert result.code == 1
    (cell,) = _cells(result)
    assert cell["resolved"] is False
    assert cell["ok"] is False
    assert cell["floor"] is None
    assert "resolution failed" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--glibc", "2.29"], "glibc level"),
        (["--glibc", "banana"], "not a glibc version"),
        (["--extra", "vlm"], "did you mean 'vllm'"),
        (["--as-of", "yesterday"], "not a date"),
        (["--index-url", "ftp://x/simple"], "--index-url"),
    ],
)
def test_bad_usage_exits_2(cli: Callable[..., Result], args: list[str], message: str) -> None:
    result = cli("installs", "--release", "v0.7.1", *args)
    assert result.code == 2
    assert message in result.err
