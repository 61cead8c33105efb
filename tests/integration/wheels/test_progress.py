"""A wheels run reports only through its reporter; the command line renders it as log lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from buildmatrix._call import echo_to
from buildmatrix.loader import load_matrix
from buildmatrix.wheels import WheelsRequest, run_wheels
from tests.conftest import MATRIX_PATH, Result
from tests.support.recorder import Recorder


@pytest.mark.slow
def test_a_wheels_run_reports_through_its_reporter(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    matrix = load_matrix(MATRIX_PATH)
    request = WheelsRequest(
        matrix=matrix, releases=matrix.releases[:1], packages=("ai-dynamo",), backend="local", out=tmp_path
    )
    recorder = Recorder()
    with echo_to(recorder):
        report = run_wheels(request, recorder)
    assert [r.status for r in report.results] == ["built"]
    assert capfd.readouterr() == ("", "")  # everything went to the reporter
    kinds = [kind for kind, _ in recorder.events]
    assert kinds[0] == "steps"
    assert kinds[-1] == "end"
    assert recorder.events[0] == ("steps", "wheels 1")
    assert ("advance", "wheel:ai-dynamo:main:py3:x86_64: built") in recorder.events
    assert kinds.index("command") < kinds.index("advance")  # the build is echoed before it is counted
    assert any(kind == "note" and message.startswith("$WORK is ") for kind, message in recorder.events)


@pytest.mark.slow
def test_the_cli_renders_progress_as_plain_lines_in_a_log(cli: Callable[..., Result], tmp_path: Path) -> None:
    args = (
        "wheels",
        "--matrix",
        MATRIX_PATH,
        "--package",
        "ai-dynamo",
        "--backend",
        "local",
        "--out",
        tmp_path,
    )
    result = cli(*args)
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert lines[0].startswith(f"$WORK is {tmp_path}/.tmp-wheels-")
    assert lines[0].endswith(" (removed at the end of the run)")
    assert any(line.startswith("+ ") and " build " in line and "$WORK/" in line for line in lines)
    assert "[1/1] wheel:ai-dynamo:main:py3:x86_64: built" in lines
    assert result.out == ""  # human output on stderr, stdout kept for --format json
