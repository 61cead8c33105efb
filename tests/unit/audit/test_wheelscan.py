"""buildmatrix.audit.wheelscan: a zip bomb member is corrupt, found without inflating it."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildmatrix.audit import audit_wheel, wheelscan
from tests.support.elffactory import (
    EXT,
    make_wheel,
)


def test_zip_bomb_member_is_corrupt_without_inflating(
    sample: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wheelscan, "BOMB_SIZE", 1 << 20)  # 1 MiB stands in for 1 GiB
    bomb = sample + bytes(8 << 20)  # an ELF followed by 8 MiB of zeros: deflates ~1000:1
    data = bytes(8 << 20)  # the same zeros without the ELF magic: data, not code
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: bomb, "demo/zeros.bin": data})
    audit = audit_wheel(wheel)
    ((violation),) = audit.violations
    assert (violation.kind, violation.file) == ("corrupt", EXT)
    assert "zip bomb" in violation.detail
