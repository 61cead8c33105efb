"""buildmatrix.layers.scan: layers applied with overlay semantics as a container sees them, and
``--quick`` honest about what it did not read.
"""

from __future__ import annotations

from pathlib import Path

from buildmatrix.model import Matrix
from tests.support.ocifactory import (
    SITE,
    Entry,
    _manifest,
    dist,
    good_layers,
    good_spec,
    write_oci_layout,
)
from tests.support.verifying import _failed, image_checks, run_verify


def test_directory_replaced_by_a_file_hides_the_lower_dist_info(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    # An upper layer turns vLLM's dist-info directory into a plain file: the container
    # sees no vLLM metadata, so vLLM is not installed however good the lower layer is.
    layers.append([Entry(f"{SITE}/vllm-0.11.0.dist-info", b"not a directory")])
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    failed = _failed(run_verify(matrix, images=(str(layout),)))
    assert set(failed) == {"vllm"}
    assert failed["vllm"].found == "(not installed)"


def test_directory_replaced_by_a_symlink_hides_the_lower_content(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers.append([Entry("opt/buildmatrix", link="/tmp", kind="symlink")])
    # ... and a symlink over the NIXL package hides the libnixl under it.
    layers.append([Entry(f"{SITE}/nixl_cu12", link="/usr/lib", kind="symlink")])
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    failed = _failed(run_verify(matrix, images=(str(layout),)))
    assert set(failed) == {"pins.json", "libnixl"}
    assert failed["libnixl"].found == "0 copies"


def test_whiteout_hides_a_lower_dist_info(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers.append([Entry(f"{SITE}/.wh.nixl-0.7.1.dist-info")])
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    failed = _failed(run_verify(matrix, images=(str(layout),)))
    assert set(failed) == {"nixl"}
    assert failed["nixl"].found == "(not installed)"
    # An opaque directory in an upper layer hides everything the lower layers put in it.
    opaque = good_layers()
    opaque.append([Entry(f"{SITE}/.wh..wh..opq"), dist("vllm", "0.11.0")])
    layout = write_oci_layout(tmp_path / "opaque", good_spec(layers=opaque))
    # (the wheel's libnixl under site-packages goes with it)
    assert set(_failed(run_verify(matrix, images=(str(layout),)))) == {"nixl", "libnixl"}


def test_a_lower_file_replaced_by_an_upper_directory_is_not_read(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers.insert(1, [Entry("opt/buildmatrix", b"a file, once")])
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    assert not _failed(run_verify(matrix, images=(str(layout),)))


def test_quick_names_the_layers_it_skipped(tmp_path: Path, matrix: Matrix) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    base = _manifest(layout)["layers"][0]["digest"]
    report = run_verify(matrix, images=(str(layout),), quick=True)
    checks = {c.name: c for c in image_checks(report)}
    assert all(c.ok for c in checks.values())
    assert "every entry stays inside the root" not in checks["layer paths"].detail
    assert checks["layer paths"].detail == (
        f"every entry of the 1 layer(s) read stays inside the root; not read (--quick): layer {base}"
    )
    assert checks["blob digests"].found == "manifest, config and 1 of 2 layers verified"
    assert base in checks["blob digests"].detail
    full = {c.name: c for c in image_checks(run_verify(matrix, images=(str(layout),)))}
    assert full["blob digests"].found == "manifest, config and 2 of 2 layers verified"
    assert full["layer paths"].detail == "every entry stays inside the root"
