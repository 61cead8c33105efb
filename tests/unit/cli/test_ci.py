"""buildmatrix ci on the command line: GitHub outputs written, JSON, the matrix's runners."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildmatrix import ci
from tests.conftest import REPO_ROOT, Result
from tests.support.workflows import RUNNER_TABLE, _matrix_with


def test_ci_command_writes_outputs(cli: Callable[..., Result], tmp_path: Path, monkeypatch: Any) -> None:
    output = tmp_path / "github_output"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli(
        "ci", "--matrix", REPO_ROOT / "matrix.toml", "--ref", "refs/tags/v0.7.1", "--github-output", output
    )
    assert result.code == 0, result.err
    written = dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())
    assert tuple(written) == ci.OUTPUTS
    assert json.loads(written["releases"]) == ["v0.7.1"]
    assert "`image:vllm:v0.7.1:cuda12.8:linux/arm64`" in summary.read_text(encoding="utf-8")
    bad = cli("ci", "--matrix", REPO_ROOT / "matrix.toml", "--release", "v9")
    assert bad.code == 2
    assert "unknown release 'v9'" in bad.err


def test_ci_command_json(cli: Callable[..., Result], monkeypatch: Any) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = cli("ci", "--matrix", REPO_ROOT / "matrix.toml", "--release", "main", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["wheel_shards"] == [0]
    assert data["manifest_shards"] == [0]
    assert len(data["manifests"][0]["include"]) == 3  # main x 3 frameworks


def test_the_ci_command_plans_the_matrix_runners(cli: Callable[..., Result], tmp_path: Path) -> None:
    matrix = _matrix_with(tmp_path, append=RUNNER_TABLE)
    result = cli("ci", "--matrix", matrix, "--release", "v0.7.1", "--format", "json")
    assert result.code == 0, result.err
    jobs = json.loads(result.out)["images"][0]["include"]
    assert {j["arch"]: j["runner"] for j in jobs if j["framework"] == "sglang"} == {
        "x86_64": "ubuntu-24.04-16core",
        "aarch64": ["self-hosted", "linux", "arm64", "big-disk"],
    }
