"""buildmatrix.wheels.host: pyenv shims resolved like pyenv, or left to it when unsure."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildmatrix.wheels.host import resolve_pyenv_shim


def _fake_pyenv(root: Path, installed: tuple[str, ...], global_version: str | None) -> Path:
    """A pyenv root with a python3.12 shim and python3.12 in each installed version."""
    shim = root / "shims" / "python3.12"
    shim.parent.mkdir(parents=True)
    shim.write_text("#!/bin/sh\nexit 127\n")
    for version in installed:
        binary = root / "versions" / version / "bin" / "python3.12"
        binary.parent.mkdir(parents=True)
        binary.write_text("")
    (root / "versions").mkdir(exist_ok=True)
    if global_version is not None:
        (root / "version").write_text(f"{global_version}\n# a comment\n")
    return shim


def test_pyenv_shim_resolves_like_pyenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = _fake_pyenv(tmp_path / "pyenv", ("3.11.7", "3.12.1"), global_version="3.11.7")
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    monkeypatch.setenv("PYENV_DIR", str(tmp_path / "project"))
    (tmp_path / "project").mkdir()
    # The global version has no python3.12: pyenv would fail, so nothing is run.
    (tmp_path / "pyenv" / "versions" / "3.11.7" / "bin" / "python3.12").unlink()
    assert resolve_pyenv_shim(shim, "python3.12") is None
    # $PYENV_VERSION names several versions; the first that has the command wins.
    monkeypatch.setenv("PYENV_VERSION", "3.11.7:3.12.1")
    assert resolve_pyenv_shim(shim, "python3.12") == tmp_path / "pyenv/versions/3.12.1/bin/python3.12"
    # Without it, the nearest .python-version above the folder decides.
    monkeypatch.delenv("PYENV_VERSION")
    (tmp_path / ".python-version").write_text("3.12.1\n")
    assert resolve_pyenv_shim(shim, "python3.12") == tmp_path / "pyenv/versions/3.12.1/bin/python3.12"


def test_pyenv_shim_left_to_pyenv_when_unsure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = _fake_pyenv(tmp_path / "pyenv", ("3.12.1",), global_version=None)
    monkeypatch.setenv("PYENV_VERSION", "3.12")  # a prefix only pyenv itself resolves
    assert resolve_pyenv_shim(shim, "python3.12") == shim
    plain = tmp_path / "bin" / "python3.12"  # not a shim at all
    assert resolve_pyenv_shim(plain, "python3.12") == plain
