"""buildmatrix.verify.built: wheels that cannot be read (real built wheels: tests/integration/verify)."""

from __future__ import annotations

from pathlib import Path

from buildmatrix.model import Matrix
from tests.support.ocifactory import good_spec, write_oci_layout
from tests.support.verifying import image_checks, run_verify


def test_unreadable_wheel_is_exit_2_with_other_checks(tmp_path: Path, matrix: Matrix) -> None:
    broken = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    broken.write_bytes(b"PK\x03\x04 truncated")
    good = write_oci_layout(tmp_path / "good", good_spec())
    report = run_verify(matrix, wheels=(broken,), images=(str(good),))
    assert report.exit_code == 2
    assert any(str(broken) in error for error in report.errors)
    assert image_checks(report)
