"""The repository's GitHub workflows as the CI tests read them, and a matrix copy without [runners]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _matrix_with(tmp_path: Path, replace: tuple[str, str] = ("", ""), append: str = "") -> Path:
    text = (REPO_ROOT / "matrix.toml").read_text(encoding="utf-8")
    start = text.index("[runners.wheel]")
    end = text.index("# ---", start)
    text = text[:start] + text[end:]  # the real matrix without its [runners] tables
    path = tmp_path / "matrix.toml"
    path.write_text(text.replace(*replace) + append, encoding="utf-8")
    return path


def _steps(name: str, job: str) -> list[dict[str, Any]]:
    steps = _load(name)["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


RUNNER_TABLE = """
[runners.wheel]
aarch64 = "ubuntu-24.04-arm"

[runners.image]
x86_64 = "ubuntu-24.04-16core"
aarch64 = ["self-hosted", "linux", "arm64", "big-disk"]
"""
