"""The release workflow's sdists step, run for real: one sdist per package with its release inside
(``python -m build`` fetches setuptools: network).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.workflows import _steps


@pytest.mark.network  # `python -m build` fetches setuptools into its isolated build env
def test_the_sdists_step_builds_one_sdist_per_package_with_its_release_inside(tmp_path: Path) -> None:
    import tarfile

    from buildmatrix.loader import load_matrix

    step = next(s for s in _steps("release.yml", "sdists") if '"-m", "build", "--sdist"' in s.get("run", ""))
    assert step["env"]["RELEASES"] == "${{ needs.plan.outputs.releases }}"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO_ROOT / "matrix.toml", checkout)
    shutil.copytree(REPO_ROOT / "examples", checkout / "examples")
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "RELEASES": '["v0.7.1"]',
    }
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    matrix = load_matrix(REPO_ROOT / "matrix.toml")
    sdists = sorted((checkout / "sdist").glob("*.tar.gz"))
    expected = sorted(f"{str(w.name).replace('-', '_')}-0.7.1.tar.gz" for w in matrix.wheels)
    assert [p.name for p in sdists] == expected
    for sdist in sdists:
        root = sdist.name.removesuffix(".tar.gz")
        with tarfile.open(sdist) as archive:
            info = json.load(archive.extractfile(f"{root}/.buildmatrix/build.json"))  # type: ignore[arg-type]
            pkg_info = archive.extractfile(f"{root}/PKG-INFO").read().decode()  # type: ignore[union-attr]
        assert (info["release"], info["version"]) == ("v0.7.1", "0.7.1")
        assert "\nVersion: 0.7.1\n" in pkg_info
        if info["package"] == "ai-dynamo":
            assert "Requires-Dist: ai-dynamo-runtime==0.7.1" in pkg_info
    # The source folders are untouched: the build.json went into a staged copy.
    assert not list((checkout / "examples").rglob("build.json"))
