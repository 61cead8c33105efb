"""buildmatrix.installs.results: the committed results, shown by docs and checked by verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from buildmatrix.installs import results as results_module
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from buildmatrix.verify import VerifyOptions, verify
from tests.conftest import Result
from tests.support.localindex import serve_index


def _matrix_copy(repo_root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text((repo_root / "matrix.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_write_then_docs_and_verify_show_the_contradiction(
    cli: Callable[..., Result], built: dict[str, Path], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _matrix_copy(repo_root, tmp_path)
    with serve_index(list(built.values())) as served:
        result = cli(
            "installs",
            "--matrix",
            matrix_path,
            "--release",
            "v0.7.1",
            "--arch",
            "x86_64",
            "--python",
            "3.12",
            "--extra",
            "vllm",
            "--index-url",
            served.url,
            "--no-cache",
            "--write",
        )
    assert result.code == 1, result.err
    written = json.loads((tmp_path / "docs" / "installs.json").read_text())
    assert written["indexes"] == [served.url]
    assert [c["target_glibc"] for c in written["cells"]] == ["2.28", "2.34", "2.35", "2.39"]
    assert cli("docs", "--matrix", matrix_path).code == 0
    page = (tmp_path / "docs" / "support-matrix.md").read_text()
    assert "### Effective glibc floor" in page
    assert f"`underclaim/_fast.so` in {built['underclaim'].name}" in page
    assert (
        "v0.7.1 [vllm] x86_64 Python 3.12 contradicts the claimed floor glibc >=2.28: needs glibc 2.29"
        in page
    )
    assert "Ubuntu 24.04 (glibc 2.39): no wheel for srconly==1.0" in page
    assert (
        "Ubuntu 22.04" not in page.split("### Effective glibc floor")[1].split("###")[0]
    )  # 3.12: 24.04 only
    assert cli("docs", "--matrix", matrix_path, "--check").code == 0  # offline: reads the committed file
    matrix = load_matrix(matrix_path)
    checks = results_module.check_results(matrix, None)
    # One per cell at a claimed glibc: the floor's 2.28, Amazon Linux's 2.34, Ubuntu 24.04's 2.39;
    # the rules claim Python 3.12 on no other OS row (2.35 is Ubuntu 22.04's).
    assert sorted(check.name.rsplit(" ", 1)[1] for check in checks) == ["2.28", "2.34", "2.39"]
    assert not any(check.ok for check in checks)
    at_234 = next(check for check in checks if check.name.endswith("glibc 2.34"))
    assert "CentOS Stream 9" not in at_234.expected
    assert "Amazon Linux 2023 (glibc 2.34)" in at_234.expected
    assert any("needs glibc 2.29" in check.found for check in checks)


def test_results_that_lie_about_ok_are_bad_input(
    cli: Callable[..., Result], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _matrix_copy(repo_root, tmp_path)
    cell = {
        "release": "v0.7.1",
        "extra": "vllm",
        "python": "3.12",
        "arch": "x86_64",
        "target_glibc": "2.28",
        "resolved": True,
        "floor": "2.29",
        "set_by": None,
        "source_only": [],
        "underclaims": [],
        "wheels": 1,
        "bytes_read": 1,
        "ok": True,
    }
    (tmp_path / "docs").mkdir()
    document = {
        "schema": 1,
        "date": "2026-01-01",
        "as_of": None,
        "indexes": ["https://pypi.org/simple"],
        "cells": [cell],
    }
    (tmp_path / "docs" / "installs.json").write_text(json.dumps(document))
    result = cli("docs", "--matrix", matrix_path)
    assert result.code == 2
    assert "installs.json: cells[0].ok" in result.err
    for field, value, message in (
        ("wheels", -1, "cells[0].wheels"),
        ("underclaims", ["x"], "cells[0].underclaims"),
        ("target_glibc", "soon", "cells[0].target_glibc"),
    ):
        document["cells"] = [{**cell, "ok": False, field: value}]
        (tmp_path / "docs" / "installs.json").write_text(json.dumps(document))
        bad = cli("docs", "--matrix", matrix_path)
        assert bad.code == 2
        assert message in bad.err


def test_committed_results_make_verify_fail_on_the_real_matrix(real_matrix: Matrix) -> None:
    """The committed docs/installs.json (from PyPI) disproves the claimed 2.28 for v0.7.1 [vllm]."""
    checks = results_module.check_results(real_matrix, None)
    failing = {check.name: check for check in checks if not check.ok}
    claim = failing["v0.7.1 [vllm] x86_64 py3.12 at glibc 2.28"]
    assert "the claimed floor glibc >=2.28" in claim.expected
    assert "needs glibc 2.29 (vllm-0.11.0-" in claim.found
    assert "no wheel for flashinfer-python==0.3.1" in claim.found
    report = verify(real_matrix, VerifyOptions())
    assert report.exit_code == 1
    assert claim in report.checks
