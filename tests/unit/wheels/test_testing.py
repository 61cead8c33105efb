"""buildmatrix.wheels.testing: cibuildwheel's test settings read from the package (test-command,
test-requires); bad settings are bad input. Running the tests: tests/integration/wheels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from buildmatrix.errors import UsageError
from buildmatrix.wheels.testing import read_test_spec
from tests.conftest import REPO_ROOT


def _package(tmp_path: Path, table: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "p"\n\n[tool.cibuildwheel]\n{table}\n')
    return tmp_path


def test_reads_cibuildwheels_settings_from_the_package() -> None:
    spec = read_test_spec(REPO_ROOT / "examples" / "kvbm")
    assert spec is not None
    assert spec.command == ("pytest", "{package}/tests")
    assert spec.requires == ("pytest",)
    assert read_test_spec(REPO_ROOT / "examples" / "ai-dynamo") is None  # declares none: nothing runs


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('test-command = "pytest {package}/tests && rm -rf /"', "shell syntax"),
        ('test-command = "pytest $HOME"', "shell syntax"),
        ('test-command = "pytest \'unclosed"', "No closing quotation"),
        ('test-command = ""', "non-empty"),
        ('test-command = "pytest"\ntest-requires = ["pytest >>> 1"]', "not a requirement"),
        ('test-command = "pytest"\ntest-requires = 3', "list of requirements"),
    ],
)
def test_bad_test_settings_are_bad_input(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read_test_spec(_package(tmp_path, table))
