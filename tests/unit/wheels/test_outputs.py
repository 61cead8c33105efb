"""buildmatrix.wheels.outputs: work folders removed, abandoned ones cleaned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buildmatrix.errors import UsageError
from buildmatrix.wheels.outputs import LOCK, OutputFolder
from tests.support.wheelbuilds import _poison


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


@pytest.mark.parametrize("filename", ["../victim.whl", "ABSOLUTE", "sub/../../victim.whl", "link.whl", ""])
def test_poisoned_manifest_is_refused(tmp_path: Path, filename: str) -> None:
    victim = tmp_path / "victim.whl"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    if filename == "link.whl":
        (out / "link.whl").symlink_to(victim)
    _poison(out, str(victim) if filename == "ABSOLUTE" else filename)
    folder = OutputFolder(out)
    with pytest.raises(UsageError, match=r"manifest.json: entry 'wheel:ai-dynamo:main:py3:x86_64'"):
        folder.entries  # noqa: B018 - reading is what is refused


@pytest.mark.parametrize("name", [LOCK, "manifest.json", "logs", "rejected"])
def test_links_in_the_output_folder_are_refused(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(outside if name in ("logs", "rejected") else outside / "file")
    with pytest.raises(UsageError, match=f"{name} is a symbolic link"), OutputFolder(out).locked():
        pass
    assert list(outside.iterdir()) == []
