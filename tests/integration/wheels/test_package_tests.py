"""The local backend tests each wheel it builds, as cibuildwheel does: clean venv, test-command
(real builds; reading the settings is in tests/unit/wheels/test_testing.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MATRIX_PATH, REPO_ROOT

WHEELS = [sys.executable, "-m", "buildmatrix", "wheels", "--package", "ai-dynamo-runtime"]
WHEELS += ["--backend", "local"]


@pytest.mark.slow
def test_a_failing_package_test_fails_the_target_and_runs_against_the_installed_wheel(tmp_path: Path) -> None:
    shutil.copy(MATRIX_PATH, tmp_path / "matrix.toml")
    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    tests = tmp_path / "examples" / "ai-dynamo-runtime" / "tests"
    (tests / "test_installed.py").write_text(
        "import ai_dynamo_runtime\n\n\n"
        "def test_imports_the_installed_wheel():\n"
        "    assert 'test-venv' in ai_dynamo_runtime.__file__, ai_dynamo_runtime.__file__\n"
        "    assert False, 'buildmatrix-test-marker'\n"
    )
    result = subprocess.run(
        [*WHEELS, "--matrix", str(tmp_path / "matrix.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-4000:]
    failed = result.stderr[result.stderr.index("FAILED") :]
    assert "buildmatrix-test-marker" in failed  # the first assert passed: the wheel, not the source
    assert "8 passed" not in failed or "1 failed" in failed
    assert not list((tmp_path / "wheelhouse").glob("*.whl"))  # a wheel whose tests fail is not published
    # Fixed, the same run publishes the wheel, tested.
    (tests / "test_installed.py").write_text(
        "import ai_dynamo_runtime\n\n\n"
        "def test_imports_the_installed_wheel():\n"
        "    assert 'test-venv' in ai_dynamo_runtime.__file__, ai_dynamo_runtime.__file__\n"
    )
    again = subprocess.run(
        [*WHEELS, "--matrix", str(tmp_path / "matrix.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    assert len(list((tmp_path / "wheelhouse").glob("ai_dynamo_runtime-*.whl"))) == 1
    log = next((tmp_path / "wheelhouse" / "logs").glob("ai-dynamo-runtime-*.log")).read_text()
    assert "9 passed" in log
