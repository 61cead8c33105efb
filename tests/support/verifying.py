"""Running buildmatrix verify in the tests, and a repository copy whose meta package pins given extras."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildmatrix.model import Matrix
from buildmatrix.verify import Report, VerifyOptions, verify
from tests.conftest import REPO_ROOT


def run_verify(matrix: Matrix, **options: Any) -> Report:
    return verify(matrix, VerifyOptions(**options))


def image_checks(report: Report) -> list[Any]:
    # The committed `installs` results are checked too (tests/unit/installs/test_results.py covers them).
    return [c for c in report.checks if not c.subject.endswith(("pyproject.toml", "installs.json"))]


def failed_names(report: Report) -> set[str]:
    return {c.name for c in image_checks(report) if not c.ok}


RIGHT_EXTRAS = {
    "vllm": ["vllm[flashinfer]==0.11.0", "nixl[cu12]<=0.7.1"],
    "sglang": ["sglang==0.5.3.post4", "nixl[cu12]<=0.7.1"],
    "trtllm": ["tensorrt-llm==1.2.0rc3"],
}


def _repo_with_meta_pyproject(tmp_path: Path, extras: Mapping[str, list[str]], version: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "matrix.toml", tmp_path / "matrix.toml")
    shutil.copytree(REPO_ROOT / "containers", tmp_path / "containers")  # the image plan reads it
    package = tmp_path / "examples" / "ai-dynamo"
    package.mkdir(parents=True)
    extra_lines = "\n".join(f"{name} = {json.dumps(reqs)}" for name, reqs in extras.items())
    (package / "pyproject.toml").write_text(
        f'[project]\nname = "ai-dynamo"\nversion = "{version}"\n'
        f'dependencies = ["ai-dynamo-runtime=={version}"]\n\n'
        f"[project.optional-dependencies]\n{extra_lines}\n"
    )
    return tmp_path / "matrix.toml"


MAIN_EXTRAS = {
    "vllm": ["vllm[flashinfer]==0.12.0", "nixl[cu12]<=0.8.0"],
    "sglang": ["sglang==0.5.6", "nixl[cu12]<=0.8.0"],
    "trtllm": ["tensorrt-llm==1.2.0rc5"],
}


def _failed(report: Any) -> dict[str, Any]:
    return {c.name: c for c in image_checks(report) if not c.ok}


PASSWORD = "pa55-PLANTED-w0rd"


TOKEN = "tok-PLANTED-123"


REPO = REPO_ROOT


# What the matrix generates for the meta package of v0.7.1 (examples/ai-dynamo).
EXACT_0_7_1 = [
    "ai-dynamo-runtime==0.7.1",
    'vllm[flashinfer]==0.11.0; extra == "vllm"',
    'nixl[cu12]<=0.7.1; extra == "vllm"',
    'sglang==0.5.3.post4; extra == "sglang"',
    'nixl[cu12]<=0.7.1; extra == "sglang"',
    'tensorrt-llm==1.2.0rc3; extra == "trtllm"',
]


def run(matrix: Matrix, **options: Any) -> Report:
    return verify(matrix, VerifyOptions(**options))


def of(report: Report, subject: Path | str) -> list[Any]:
    return [c for c in report.checks if c.subject == str(subject)]


def buildmatrix(
    *args: str | os.PathLike[str], matrix: Path = REPO / "matrix.toml"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildmatrix", args[0], "--matrix", str(matrix), *map(str, args[1:])],
        capture_output=True,
        text=True,
        check=False,
    )
