"""buildmatrix.wheels.outputs: work folders removed, abandoned ones cleaned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buildmatrix.wheels.outputs import OutputFolder


def test_work_folder_is_removed_and_abandoned_ones_are_cleaned(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path / "out")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / "out" / f".tmp-wheels-{dead.pid}-abcd"
    abandoned.mkdir(parents=True)

    def interrupted_build() -> None:
        with out.work_folder() as work:
            (work / "partial.whl").write_bytes(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_build()
    assert not abandoned.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["logs"]
