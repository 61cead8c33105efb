"""Shared fixtures: the real matrix, a CLI runner, and golden-file comparison.

Golden files live in tests/golden/; run the tests with BUILDMATRIX_REGENERATE=1
to rewrite them on purpose, then review the diff.

tests/unit mirrors the package and holds only fast tests; whatever needs a container,
the network or real builds (markers container, network, slow) lives in tests/integration,
and a collection that finds such a test under tests/unit fails. Helpers: tests/support.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildmatrix.cli import main
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix

REPO_ROOT = Path(__file__).resolve().parent.parent
MATRIX_PATH = REPO_ROOT / "matrix.toml"
GOLDEN = Path(__file__).resolve().parent / "golden"
UNIT = Path(__file__).resolve().parent / "unit"
INTEGRATION_ONLY = ("container", "network", "slow")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Container tests need buildah: in CI its absence is a failure, never a skip."""
    if item.get_closest_marker("container") and shutil.which("buildah") is None:
        message = "buildah is not installed (apt-get install buildah debootstrap, as .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def misplaced_in_unit(items: Iterable[pytest.Item]) -> list[str]:
    """The tests under tests/unit that carry a marker of tests/integration, with the marker."""
    return [
        f"{item.nodeid} ({marker})"
        for item in items
        if item.path.is_relative_to(UNIT)
        for marker in INTEGRATION_ONLY
        if item.get_closest_marker(marker)
    ]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """tests/unit stays fast: a container, network or slow test there fails the collection."""
    misplaced = misplaced_in_unit(items)
    if misplaced:
        raise pytest.UsageError(
            "tests/unit is for fast tests; move to tests/integration: " + ", ".join(misplaced)
        )


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_matrix() -> Matrix:
    return load_matrix(MATRIX_PATH)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``buildmatrix ARGS`` in-process; argparse exits become exit codes."""

    def run(*args: str | os.PathLike[str]) -> Result:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with tests/golden/NAME, or rewrite it when regenerating."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("BUILDMATRIX_REGENERATE"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"no golden file {path}; run with BUILDMATRIX_REGENERATE=1"
        assert text == path.read_text(encoding="utf-8"), (
            f"output differs from {path}; if intended, rerun with BUILDMATRIX_REGENERATE=1"
        )

    return check


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO_ROOT / "matrix.toml")
