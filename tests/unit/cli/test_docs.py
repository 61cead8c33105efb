"""buildmatrix docs on the command line: written atomically, --check with a diff, --out, warnings
and --strict, a bad matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from buildmatrix import docs
from buildmatrix.loader import load_matrix
from tests.conftest import Result


def _copy_matrix(repo_root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text((repo_root / "matrix.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_docs_writes_atomically_then_check_passes(
    cli: Callable[..., Result], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _copy_matrix(repo_root, tmp_path)
    result = cli("docs", "--matrix", matrix_path)
    assert result.code == 0, result.err
    page = tmp_path / "docs" / "support-matrix.md"
    assert page.read_text(encoding="utf-8") == docs.render(load_matrix(matrix_path))
    assert [p.name for p in page.parent.iterdir()] == ["support-matrix.md"]  # no temp file left
    check = cli("docs", "--matrix", matrix_path, "--check")
    assert check.code == 0, check.err
    assert check.out == ""
    assert "in sync" in check.err


def test_check_fails_with_a_diff_naming_a_changed_pin(
    cli: Callable[..., Result], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _copy_matrix(repo_root, tmp_path)
    assert cli("docs", "--matrix", matrix_path).code == 0
    text = matrix_path.read_text(encoding="utf-8")
    old = 'pins = { sglang = "0.5.3.post4", tensorrt-llm = "1.2.0rc3", vllm = "0.11.0"'
    assert text.count(old) == 2  # v0.7.1 and v0.7.0.post1; bump only the first
    matrix_path.write_text(text.replace(old, old.replace('vllm = "0.11.0"', 'vllm = "0.11.1"'), 1))

    result = cli("docs", "--matrix", matrix_path, "--check")
    assert result.code == 1
    assert "(committed)\n" in result.out
    assert "(generated from matrix.toml)\n" in result.out
    removed = [line for line in result.out.splitlines() if line.startswith("-| vLLM")]
    added = [line for line in result.out.splitlines() if line.startswith("+| vLLM")]
    assert len(removed) == len(added) == 1
    assert "0.11.1" in added[0]
    assert "0.11.1" not in removed[0]
    assert "out of date" in result.err
    # --check wrote nothing: the page still has the old pin.
    assert "0.11.1" not in (tmp_path / "docs" / "support-matrix.md").read_text(encoding="utf-8")


def test_check_without_a_page_fails_and_out_is_honoured(
    cli: Callable[..., Result], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _copy_matrix(repo_root, tmp_path)
    out = tmp_path / "elsewhere" / "matrix.md"
    missing = cli("docs", "--matrix", matrix_path, "--out", out, "--check")
    assert missing.code == 1
    assert "does not exist" in missing.err
    # A typed --out never creates folders: a typo in the path is reported (exit 2).
    no_folder = cli("docs", "--matrix", matrix_path, "--out", out)
    assert no_folder.code == 2
    assert "folders are not created" in no_folder.err
    assert not out.parent.exists()
    out.parent.mkdir()
    assert cli("docs", "--matrix", matrix_path, "--out", out).code == 0
    assert cli("docs", "--matrix", matrix_path, "--out", out, "--check").code == 0
    assert not (tmp_path / "docs").exists()


def test_command_prints_warnings_and_strict_fails(
    cli: Callable[..., Result], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _copy_matrix(repo_root, tmp_path)
    result = cli("docs", "--matrix", matrix_path)
    assert result.code == 0
    assert "buildmatrix: warning: release v0.8.0 is unreleased but planned for 2025-01-14" in result.err
    strict = cli("docs", "--matrix", matrix_path, "--strict")
    assert strict.code == 1
    assert "--strict" in strict.err


def test_bad_matrix_exits_2(cli: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text("schema = 1\n[project\n", encoding="utf-8")
    result = cli("docs", "--matrix", path, "--check")
    assert result.code == 2
    assert "matrix.toml" in result.err
