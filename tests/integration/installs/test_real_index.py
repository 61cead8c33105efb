"""buildmatrix installs against the real index: v0.7.1's vLLM needs GLIBC_2.29 from the vllm wheel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from tests.conftest import Result
from tests.support.installs import _cells


@pytest.mark.network
def test_v071_vllm_needs_glibc_229_from_the_vllm_wheel(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli(
        "installs",
        "--release",
        "v0.7.1",
        "--extra",
        "vllm",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--cache",
        tmp_path / "cache",
        "--format",
        "json",
    )
    assert result.code == 1, result.err
    cells = {c["target_glibc"]: c for c in _cells(result)}
    assert set(cells) == {"2.28", "2.34", "2.35", "2.39"}  # the claim, every x86_64 OS row's glibc
    claimed = cells["2.28"]
    assert claimed["resolved"] is True
    assert claimed["floor"] == "2.29"
    assert claimed["set_by"]["wheel"].startswith("vllm-0.11.0-")
    assert claimed["set_by"]["member"].startswith("vllm/")
    assert claimed["set_by"]["member"].endswith(".so")
    assert any(u["wheel"].startswith("vllm-0.11.0-") and u["needs"] == "2.29" for u in claimed["underclaims"])
    assert claimed["ok"] is False
    assert "flashinfer-python==0.3.1" in claimed["source_only"]  # no wheel at all: named
    for target, cell in cells.items():
        assert cell["resolved"] is True
        assert Version(cell["floor"]) <= Version(target) or target == "2.28"
    assert sum(c["bytes_read"] for c in cells.values()) > 0
