"""buildmatrix._call: the commands it echoes are short."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_echoes_are_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from buildmatrix._call import echo_alias, short_command

    monkeypatch.chdir(tmp_path)
    work = tmp_path / "wheelhouse" / ".tmp-wheels-123-abcdef01"
    with echo_alias(work, "$WORK"):
        shown = short_command(["uv", "build", "--out-dir", str(work / "pkg" / "dist"), str(tmp_path / "src")])
    assert shown == "uv build --out-dir $WORK/pkg/dist src"
    assert short_command([str(work)]) == "wheelhouse/.tmp-wheels-123-abcdef01"  # alias gone after use
