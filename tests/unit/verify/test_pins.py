"""buildmatrix.verify.pins: the meta package's pyproject extras against the release pins."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement

from buildmatrix.loader import load_matrix
from buildmatrix.verify import VerifyOptions, verify
from buildmatrix.verify.pins import group_by_extra
from tests.support.verifying import MAIN_EXTRAS, RIGHT_EXTRAS, _repo_with_meta_pyproject


def test_pyproject_in_sync_and_drifted(tmp_path: Path) -> None:
    path = _repo_with_meta_pyproject(tmp_path / "ok", MAIN_EXTRAS, "0.8.0.dev0")
    report = verify(load_matrix(path), VerifyOptions())
    pyproject_checks = [c for c in report.checks if c.subject.endswith("pyproject.toml")]
    assert len(pyproject_checks) == 6  # the runtime requirement and 5 in the extras
    assert all(c.ok for c in pyproject_checks)
    # The upstream drift: pyproject said vLLM 0.10.2 while the release builds 0.12.0.
    drifted = {**MAIN_EXTRAS, "vllm": ["vllm[flashinfer]==0.10.2", "nixl[cu12]<=0.8.0"]}
    path = _repo_with_meta_pyproject(tmp_path / "drift", drifted, "0.8.0.dev0")
    report = verify(load_matrix(path), VerifyOptions())
    failed = [c for c in report.checks if not c.ok]
    # The page is missing in this scratch repository too.
    assert [(c.name, c.found) for c in failed] == [
        ("vllm", "vllm[flashinfer]==0.10.2"),
        ("support-matrix", "(missing)"),
    ]
    assert report.exit_code == 1


def test_pyproject_with_extras_generated_at_build_time(tmp_path: Path) -> None:
    """Extras written at build time are checked by building (tests/integration/verify/test_release_gate.py):
    a package whose build ignores the generated extras fails, never "ok"."""
    path = _repo_with_meta_pyproject(tmp_path, {}, "0.0.0")
    pyproject = tmp_path / "examples" / "ai-dynamo" / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "ai-dynamo"\ndynamic = ["version", "dependencies", "optional-dependencies"]\n'
    )
    report = verify(load_matrix(path), VerifyOptions())
    built = [c for c in report.checks if c.subject.endswith("ai-dynamo (as built for main)")]
    assert {c.detail for c in built if not c.ok} >= {
        "extra 'vllm' is missing (main)",
        "base requirements does not require ai-dynamo-runtime (main)",
    }
    assert report.exit_code == 1
    # A broken requirement is bad input (exit 2), named with its place.
    pyproject.write_text('[project]\nname = "ai-dynamo"\ndependencies = ["vllm ==="]\n')
    report = verify(load_matrix(path), VerifyOptions())
    assert report.exit_code == 2
    assert any("dependencies: invalid requirement 'vllm ==='" in e for e in report.errors)


def test_pyproject_version_selects_its_release(tmp_path: Path) -> None:
    path = _repo_with_meta_pyproject(tmp_path, RIGHT_EXTRAS, "0.7.1")
    report = verify(load_matrix(path), VerifyOptions())
    pyproject_checks = [c for c in report.checks if c.subject.endswith("pyproject.toml")]
    assert pyproject_checks
    assert all(c.ok and "(v0.7.1)" in c.detail for c in pyproject_checks)
    # Selecting another release does not check the file against that one.
    report = verify(load_matrix(path), VerifyOptions(releases=(load_matrix(path).releases[0],)))
    assert all(c.ok and "(v0.7.1)" in c.detail for c in report.checks if c.subject.endswith("pyproject.toml"))


def test_extras_are_grouped_by_marker_structure() -> None:
    requires = [
        Requirement("a; extra == 'vllm'"),
        Requirement("b; (python_version >= '3.10') and extra == 'vllm'"),  # hatchling's form
        Requirement("c; 'vllm' == extra"),
        Requirement("d; python_version < '3.13'"),
        Requirement("e; extra == 'vllm' or extra == 'sglang'"),  # not attributable to one extra
    ]
    grouped, unclear = group_by_extra(requires)
    assert {k: [(r.name, m) for r, m in v] for k, v in grouped.items()} == {
        None: [("d", 'python_version < "3.13"')],
        "vllm": [("a", ""), ("b", 'python_version >= "3.10"'), ("c", "")],
    }
    assert [r.name for r in unclear] == ["e"]
