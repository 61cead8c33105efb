"""buildmatrix verify on real meta wheels built by hatchling from packages written by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from tests.support.ocifactory import RELEASE
from tests.support.verifying import MAIN_EXTRAS, RIGHT_EXTRAS, _repo_with_meta_pyproject, run_verify


def build_meta_wheel(tmp_path: Path, version: str, extras: Mapping[str, list[str]]) -> Path:
    """A real meta wheel built by hatchling from a package written here."""
    project = tmp_path / f"ai-dynamo-{version}-{len(list(tmp_path.iterdir()))}"
    (project / "src" / "ai_dynamo").mkdir(parents=True)
    (project / "src" / "ai_dynamo" / "__init__.py").write_text("")
    extra_lines = "\n".join(f"{name} = {json.dumps(reqs)}" for name, reqs in extras.items())
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "ai-dynamo"
            version = "{version}"
            dependencies = ["ai-dynamo-runtime=={version}"]

            [project.optional-dependencies]
            """
        )
        + extra_lines
        + '\n\n[tool.hatch.build.targets.wheel]\npackages = ["src/ai_dynamo"]\n'
    )
    out = project / "dist"
    code = "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))"
    name = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out / name


@pytest.mark.slow
def test_meta_wheel_with_right_extras_passes(tmp_path: Path, matrix: Matrix) -> None:
    wheel = build_meta_wheel(tmp_path, "0.7.1", RIGHT_EXTRAS)
    report = run_verify(matrix, wheels=(wheel,))
    checks = [c for c in report.checks if c.subject == str(wheel)]
    assert len(checks) == 1 + 1 + 5  # version, runtime, each extra's requirements
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.slow
def test_meta_wheel_with_wrong_extras_names_each(tmp_path: Path, matrix: Matrix) -> None:
    wrong = {
        "vllm": ["vllm[flashinfer]==0.10.2", "nixl[cu12]<=0.7.1"],  # wrong pin
        "sglang": ["sglang>=0.5.3", "nixl[cu12]<=0.6.0"],  # not exact; NIXL too low
        # trtllm: missing altogether
    }
    wheel = build_meta_wheel(tmp_path, "0.7.1", wrong)
    report = run_verify(matrix, wheels=(wheel,))
    failed = {(c.name, c.detail.split(":")[0]) for c in report.checks if not c.ok and c.subject == str(wheel)}
    assert failed == {
        ("vllm", "extra 'vllm'"),
        ("sglang", "extra 'sglang'"),
        ("nixl", "extra 'sglang'"),
        ("tensorrt-llm", "extra 'trtllm' is missing (v0.7.1)"),
        ("trtllm", "the wheel does not provide the extra 'trtllm' (v0.7.1)"),
    }
    vllm = next(c for c in report.checks if c.name == "vllm" and not c.ok)
    assert (vllm.expected, vllm.found) == ("vllm[flashinfer]==0.11.0", "vllm[flashinfer]==0.10.2")


@pytest.mark.slow
def test_wheel_of_an_unknown_version_or_runtime_mismatch(tmp_path: Path, matrix: Matrix) -> None:
    wheel = build_meta_wheel(tmp_path, "0.6.9", RIGHT_EXTRAS)
    report = run_verify(matrix, wheels=(wheel,))
    [check] = [c for c in report.checks if c.subject == str(wheel)]
    assert not check.ok
    assert check.detail == "no release of the matrix has this version"
    # Checked against a chosen release, the runtime requirement is wrong too.
    report = run_verify(matrix, wheels=(wheel,), releases=(matrix.find_release(RELEASE),))
    failed = {c.name for c in report.checks if not c.ok and c.subject == str(wheel)}
    assert failed == {"ai-dynamo", "ai-dynamo-runtime"}


@pytest.mark.slow
def test_cli_takes_a_folder_of_wheels(tmp_path: Path, cli: Callable[..., Any]) -> None:
    from buildmatrix import docs

    path = _repo_with_meta_pyproject(tmp_path / "repo", MAIN_EXTRAS, "0.8.0.dev0")
    (tmp_path / "repo" / "docs").mkdir()
    (tmp_path / "repo" / "docs" / "support-matrix.md").write_text(docs.render(load_matrix(path)))
    wheel = build_meta_wheel(tmp_path, "0.7.1", RIGHT_EXTRAS)
    result = cli("verify", "--matrix", path, "--wheel", wheel.parent, "--format", "json")
    assert result.code == 0, result.out
    subjects = {c["subject"] for c in json.loads(result.out)["checks"]}
    assert str(wheel) in subjects


@pytest.mark.slow
def test_wheels_of_other_releases_fail_naming_their_release(tmp_path: Path, matrix: Matrix) -> None:
    wheel = build_meta_wheel(tmp_path, "0.7.1", RIGHT_EXTRAS)
    report = run_verify(matrix, wheels=(wheel,), releases=(matrix.find_release("main"),))
    [check] = [c for c in report.checks if c.subject == str(wheel)]
    assert not check.ok
    assert check.detail == "the wheel belongs to release v0.7.1, not to the selected main"
    assert report.exit_code == 1
