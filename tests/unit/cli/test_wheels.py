"""buildmatrix wheels on the command line: the dry run and bad selections."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.wheelbuilds import REPO


def test_dry_run_prints_commands_and_touches_nothing(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("wheels", "--matrix", REPO / "matrix.toml", "--out", out, "--dry-run")
    assert result.code == 0, result.err
    assert "build --wheel" in result.out
    assert '"vllm[flashinfer]==0.12.0"' in result.out
    assert "auditwheel repair --only-plat --plat manylinux_2_28_" in result.out
    assert not out.exists()
    result = cli(
        "wheels",
        "--matrix",
        REPO / "matrix.toml",
        "--out",
        out,
        "--dry-run",
        "--backend",
        "cibuildwheel",
        "--arch",
        "aarch64",
        "--format",
        "json",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    envs = [c["env"] for r in data["results"] for c in r.get("commands", [])]
    assert {e["CIBW_BUILD"] for e in envs} == {"cp310-manylinux_aarch64", "cp312-manylinux_aarch64"}
    assert not out.exists()


def test_bad_selection_is_a_usage_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    matrix = REPO / "matrix.toml"
    result = cli("wheels", "--matrix", matrix, "--package", "kvbn", "--dry-run")
    assert result.code == 2
    assert "did you mean 'kvbm'" in result.err
    result = cli("wheels", "--matrix", matrix, "--package", "kvbm", "--python", "3.11", "--dry-run")
    assert result.code == 2
    assert "no wheel target matches" in result.err
    result = cli("wheels", "--matrix", matrix, "--release", "v9", "--dry-run")
    assert result.code == 2
