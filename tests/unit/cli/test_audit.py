"""buildmatrix audit on the command line: exit codes, the table and JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildmatrix.audit import printable
from tests.conftest import MATRIX_PATH
from tests.support.elffactory import (
    EXT,
    LOG2,
    compile_so,
    extension,
    make_wheel,
)


def test_cli_exit_codes_and_json(gcc: str, tmp_path: Path, cli: Callable[..., Any]) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    good = make_wheel(tmp_path / "good", "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    result = cli("audit", good, "--format", "json", "--matrix", tmp_path / "none.toml")
    assert result.code == 2  # an explicitly named matrix that does not exist
    matrix = MATRIX_PATH
    result = cli("audit", good, "--format", "json", "--matrix", matrix)
    assert result.code == 0, result.err
    (record,) = json.loads(result.out)
    assert record["wheel"] == good.name
    assert record["ok"] is True
    assert record["sym_tag"] == record["overall_tag"] == "manylinux_2_5_x86_64"
    assert record["violations"] == []
    bad = tmp_path / "good" / "broken-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("audit", tmp_path / "good", "--format", "json", "--matrix", matrix)
    assert result.code == 2  # unreadable input, after reporting every wheel
    records = {r["wheel"]: r for r in json.loads(result.out)}
    assert records[good.name]["ok"] is True
    assert records[bad.name]["violations"][0]["kind"] == "corrupt"
    assert records[bad.name]["unreadable"] is True
    bad.unlink()
    so = compile_so(
        gcc,
        tmp_path / "build",
        "ext",
        extension("#include <math.h>\ndouble f(double x){return log2(x);}"),
        "-lm",
    )
    make_wheel(tmp_path / "good", "manylinux_2_17_x86_64", {EXT: so.read_bytes()}, name="under")
    result = cli("audit", tmp_path / "good", "--format", "json", "--matrix", matrix)
    assert result.code == 1  # a violation
    assert [r["ok"] for r in json.loads(result.out)] == [True, False]
    result = cli("audit", good, "--matrix", matrix)  # the table
    assert result.code == 0
    assert "1 wheels audited, 0 with violations" in result.out
    assert cli("audit", tmp_path / "missing.whl", "--matrix", matrix).code == 2
    assert cli("audit", good, "--policy", "manylinux_9", "--matrix", matrix).code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("audit", empty, "--matrix", matrix).code == 2


def test_control_characters_are_escaped_in_the_table(
    gcc: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension(LOG2), "-lm")
    hostile = "demo/\x1b[2K\r\x1b[32mall good\x1b[0m.cpython-311-x86_64-linux-gnu.so"
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {hostile: so.read_bytes()})
    result = cli("audit", wheel, "--matrix", MATRIX_PATH)
    assert result.code == 1
    assert "\x1b" not in result.out
    assert "\r" not in result.out
    assert "demo/\\x1b[2K\\x0d\\x1b[32mall good" in result.out
    assert printable("a\u202eb\\") == "a\\u202eb\\\\"
    # JSON keeps the exact name; its own escaping keeps the terminal safe.
    result = cli("audit", wheel, "--format", "json", "--matrix", MATRIX_PATH)
    assert result.code == 1
    assert "\x1b" not in result.out
    (record,) = json.loads(result.out)
    assert {v["file"] for v in record["violations"]} == {hostile}
