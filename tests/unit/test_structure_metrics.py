"""benchmarks/structure_metrics.py, the lint gate on function and class length (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "structure_metrics.py"


def _measure(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True, check=False
    )


def test_the_package_is_within_the_limits() -> None:
    result = _measure(REPO_ROOT / "src" / "buildmatrix")
    assert result.returncode == 0, result.stdout
    assert "functions over 50 lines: 0" in result.stdout
    assert "classes over 300 lines: 0" in result.stdout


def test_a_long_function_or_class_fails_naming_it(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    body = "".join(f"    x{i} = {i}\n" for i in range(50))
    (package / "sub" / "mod.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    result = _measure(package)
    assert result.returncode == 1
    assert "functions over 50 lines: 1" in result.stdout
    assert "51  pkg.sub.mod.long" in result.stdout
    methods = "".join(f"    def m{i}(self):\n        pass\n\n" for i in range(101))
    (package / "sub" / "mod.py").write_text(f"class Big:\n{methods}")
    result = _measure(package)
    assert result.returncode == 1
    assert "classes over 300 lines: 1" in result.stdout
    assert "pkg.sub.mod.Big" in result.stdout


def test_nothing_measured_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("")
    result = _measure(tmp_path)
    assert result.returncode == 1
    assert "nothing measured" in result.stdout
    assert _measure(tmp_path / "missing").returncode == 1
