"""buildmatrix verify on the command line: JSON, the table and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildmatrix.loader import load_matrix
from tests.support.ocifactory import GOOD_LABELS, good_spec, write_oci_layout
from tests.support.verifying import MAIN_EXTRAS, _repo_with_meta_pyproject


def test_cli_json_and_exit_codes(tmp_path: Path, cli: Callable[..., Any]) -> None:
    from buildmatrix import docs

    path = _repo_with_meta_pyproject(tmp_path / "repo", MAIN_EXTRAS, "0.8.0.dev0")
    (tmp_path / "repo" / "docs").mkdir()
    (tmp_path / "repo" / "docs" / "support-matrix.md").write_text(docs.render(load_matrix(path)))
    good = write_oci_layout(tmp_path / "good", good_spec())
    result = cli("verify", "--matrix", path, "--image", good, "--format", "json")
    document = json.loads(result.out)
    assert set(document["checks"][0]) == {"subject", "name", "expected", "found", "ok", "detail"}
    assert [c for c in document["checks"] if not c["ok"]] == []
    assert document["summary"] == {
        "artifacts": 1,
        "checks": len(document["checks"]),
        "failed": 0,
        "errors": 0,
        "ok": True,
    }
    assert result.code == 0
    bad = write_oci_layout(
        tmp_path / "bad", good_spec(labels={**GOOD_LABELS, "org.buildmatrix.pin.nixl": "0.8.0"})
    )
    result = cli("verify", "--matrix", path, "--image", bad)
    assert result.code == 1
    assert "FAIL" in result.out
    assert "verify: 1 of" in result.out
    result = cli("verify", "--matrix", path, "--image", tmp_path / "nope.tar", "--format", "json")
    assert result.code == 2
    assert "nope.tar" in json.loads(result.out)["errors"][0]
    result = cli("verify", "--matrix", path, "--release", "v9.9")
    assert result.code == 2
