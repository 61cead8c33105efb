"""The nox sessions are thin: each CLI session runs its buildmatrix command with the posargs."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO_ROOT


class RecordingSession:
    """Stands in for ``nox.Session``: records what a session installs and runs."""

    def __init__(self, posargs: list[str]) -> None:
        self.posargs = posargs
        self.installed: list[tuple[str, ...]] = []
        self.ran: list[tuple[str, ...]] = []

    def install(self, *args: str) -> None:
        self.installed.append(args)

    def run(self, *args: str, **_: Any) -> None:
        self.ran.append(args)


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile", REPO_ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("session", "command"),
    [
        ("matrix", "plan"),
        ("wheels", "wheels"),
        ("audit", "audit"),
        ("images", "images"),
        ("docs", "docs"),
        ("ci_matrix", "ci"),
        ("verify", "verify"),
        ("installs", "installs"),
    ],
)
def test_cli_sessions_run_their_command_with_posargs(noxfile: ModuleType, session: str, command: str) -> None:
    recording = RecordingSession(["--release", "v0.7.1", "--dry-run"])
    getattr(noxfile, session)(recording)
    assert recording.installed == [("-e", ".")]
    assert recording.ran == [("python", "-m", "buildmatrix", command, "--release", "v0.7.1", "--dry-run")]


def test_tests_session_runs_pytest_with_posargs(noxfile: ModuleType) -> None:
    recording = RecordingSession(["-m", "not container"])
    noxfile.tests(recording)
    assert recording.installed == [("-e", ".[test]")]
    assert recording.ran == [("pytest", "-m", "not container")]
