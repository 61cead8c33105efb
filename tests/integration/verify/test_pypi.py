"""buildmatrix verify against the real PyPI: the index check and the published ai-dynamo wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buildmatrix.model import Matrix
from tests.support.ocifactory import RELEASE
from tests.support.verifying import run_verify


@pytest.mark.network
def test_real_pypi(matrix: Matrix) -> None:
    """vLLM 0.11.0 is on PyPI; sglang 0.5.3.post4 (v0.7.x's pin) was never published."""
    report = run_verify(
        matrix,
        check_index=True,
        index_url="https://pypi.org/simple/",
        releases=(matrix.find_release(RELEASE),),
    )
    checks = {c.name: c for c in report.checks if c.subject == "https://pypi.org/simple/"}
    assert checks["vllm"].ok
    assert checks["vllm"].found == "0.11.0"
    assert not checks["sglang"].ok
    assert checks["sglang"].found == "(missing)"


@pytest.mark.network
def test_published_meta_wheel(tmp_path: Path, matrix: Matrix) -> None:
    """The real ai-dynamo 0.7.1 wheel: its extras pin vLLM and TensorRT-LLM as the matrix
    does, but its SGLang extra pins 0.5.4.post3 where the reference says 0.5.3.post4, and
    every extra also requires uvloop, which the matrix does not generate."""
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"),
            *("--index-url", "https://pypi.org/simple/", "--dest", str(tmp_path), "ai-dynamo==0.7.1"),
        ],
        check=True,
    )
    [wheel] = tmp_path.glob("ai_dynamo-0.7.1-*.whl")
    report = run_verify(matrix, wheels=(wheel,))
    by_extra: dict[str, set[bool]] = {}
    for check in report.checks:
        if check.subject == str(wheel) and check.detail.startswith("extra"):
            by_extra.setdefault(check.detail.split("'")[1], set()).add(check.ok)
    assert by_extra == {"vllm": {True, False}, "sglang": {True, False}, "trtllm": {True, False}}
    failed = {(c.name, c.detail.split(":")[0]) for c in report.checks if not c.ok and c.subject == str(wheel)}
    assert failed == {
        ("sglang", "extra 'sglang'"),
        ("uvloop", "extra 'sglang'"),
        ("uvloop", "extra 'trtllm'"),
        ("uvloop", "extra 'vllm'"),
    }
