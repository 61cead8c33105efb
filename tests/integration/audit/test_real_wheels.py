"""buildmatrix.audit on small published wheels of different shapes, downloaded with pip,
against auditwheel's verdict.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from buildmatrix.audit import audit_wheels
from tests.support.elffactory import assert_agrees_with_auditwheel

REAL_WHEELS = [
    # (requirement, platform): small published wheels of different shapes
    ("markupsafe==3.0.2", "manylinux2014_x86_64"),  # one small extension
    ("pyyaml==6.0.2", "manylinux2014_x86_64"),
    ("pyzmq==26.2.0", "manylinux2014_x86_64"),  # bundles libzmq and libsodium in pyzmq.libs/
    ("msgpack==1.1.0", "musllinux_1_2_x86_64"),  # musl policies
    ("markupsafe==3.0.2", "manylinux2014_aarch64"),  # another architecture
    ("ninja==1.13.0", "manylinux2014_x86_64"),  # an executable (PT_INTERP), not an extension
]


@pytest.mark.network
def test_real_wheels_agree_with_auditwheel(tmp_path: Path) -> None:
    for requirement, platform in REAL_WHEELS:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
                "--dest", str(tmp_path / platform), requirement,
            ],
            check=True,
        )  # fmt: skip
    wheels = sorted(tmp_path.glob("*/*.whl"))
    assert len(wheels) == len(REAL_WHEELS)
    for audit, wheel in zip(audit_wheels(wheels), wheels, strict=True):
        assert not audit.pure
        assert_agrees_with_auditwheel(audit, wheel)
        assert audit.ok, (wheel.name, audit.violations)
        assert (audit.glibc is not None) == ("manylinux" in wheel.name)
