"""What the wheels tests share: a scratch copy of the project, and reading what a build wrote."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from packaging.metadata import Metadata
from packaging.requirements import Requirement

from buildmatrix.wheels.host import Host
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT


def copy_project(tmp_path: Path) -> Path:
    """matrix.toml and the examples in a scratch folder, free to edit."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "matrix.toml", root / "matrix.toml")
    shutil.copytree(REPO / "examples", root / "examples")
    return root


def requires_dist(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Metadata.from_email(archive.read(name).decode(), validate=False)
    return list(metadata.requires_dist or [])


def wheels_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.whl"))


def manifest(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "manifest.json").read_text())
    return {entry["target"]: entry for entry in data["wheels"]}


def other_arch(host: Host) -> str:
    return "aarch64" if host.arch == "x86_64" else "x86_64"


def _poison(out: Path, filename: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    entry = {"target": "wheel:ai-dynamo:main:py3:x86_64", "filename": filename, "input_hash": "x"}
    (out / "manifest.json").write_text(json.dumps({"schema": 1, "wheels": [entry]}))
