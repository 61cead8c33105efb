"""buildmatrix.verify.images: an image's distributions, libnixl copies, labels and pins file
against the matrix, from every kind of image source.
"""

from __future__ import annotations

from pathlib import Path

from buildmatrix.model import Matrix
from tests.support.ocifactory import (
    GOOD_LABELS,
    GOOD_PINS,
    RELEASE,
    Entry,
    dist,
    good_layers,
    good_spec,
    pins_file,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)
from tests.support.verifying import failed_names, image_checks, run_verify


def test_good_image_verifies_clean_from_every_source(tmp_path: Path, matrix: Matrix) -> None:
    layout = write_oci_layout(tmp_path / "layout", good_spec())
    archive = write_oci_archive(tmp_path / "image.oci.tar", layout)
    saved = write_docker_archive(tmp_path / "image.docker.tar", good_spec())
    for reference in (f"oci:{layout}:latest", f"oci-archive:{archive}", str(saved)):
        report = run_verify(matrix, images=(reference,))
        checks = image_checks(report)
        assert checks, reference
        assert all(c.ok for c in checks), [c for c in checks if not c.ok]
        names = {c.name for c in checks}
        assert {"vllm", "nixl", "libnixl", "org.buildmatrix.release", "org.buildmatrix.framework"} <= names
        installed = [c for c in checks if c.name == "vllm" and "installed at" in c.detail]
        assert installed[0].found == "0.11.0"


def test_tampered_image_fails_naming_the_distribution(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers[1] = [e for e in layers[1] if "vllm-0.11.0" not in e.path and ".wh.vllm" not in e.path]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.name, c.expected, c.found) for c in failed] == [("vllm", "==0.11.0", "0.10.2")]
    assert report.exit_code == 1 or report.errors


def test_wrong_labels_and_pins_file(tmp_path: Path, matrix: Matrix) -> None:
    labels = {**GOOD_LABELS, "org.buildmatrix.pin.vllm": "0.10.2"}
    pins = {**GOOD_PINS, "pins": {"vllm": "0.11.0", "nixl": "0.6.0"}}
    layers = good_layers()
    layers[1] = [e for e in layers[1] if not e.path.endswith("pins.json")] + [pins_file(pins)]
    layout = write_oci_layout(tmp_path / "img", good_spec(labels=labels, layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert sorted((c.name, c.detail) for c in failed) == [
        ("nixl", "/opt/buildmatrix/pins.json: pins.nixl"),
        ("vllm", "label org.buildmatrix.pin.vllm"),
    ]


def test_two_libnixl_copies_and_nixl_outside_the_specifier(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers[1] = [
        e for e in layers[1] if ".wh..wh..opq" not in e.path and "nixl-0.7.1.dist-info" not in e.path
    ] + [dist("nixl", "0.8.0")]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = {c.name: c for c in image_checks(report) if not c.ok}
    assert set(failed) == {"libnixl", "nixl"}
    assert failed["libnixl"].found == "2 copies"
    assert "/opt/nvidia/nvda_nixl/lib/libnixl.so" in failed["libnixl"].detail
    assert (failed["nixl"].expected, failed["nixl"].found) == ("<=0.7.1", "0.8.0")
    # --quick does not read every layer, so it cannot count copies.
    quick = run_verify(matrix, images=(str(layout),), quick=True)
    assert "libnixl" not in {c.name for c in image_checks(quick)}


def test_toolkit_wheels_in_the_image_match_the_release(tmp_path: Path, matrix: Matrix) -> None:
    layers = good_layers()
    layers[1] = [e for e in layers[1] if "ai_dynamo_runtime" not in e.path] + [
        dist("ai-dynamo-runtime", "0.7.0")
    ]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.name, c.expected, c.found) for c in failed] == [("ai-dynamo-runtime", "==0.7.1", "0.7.0")]
    ok_names = {c.name for c in image_checks(report) if c.ok}
    assert {"ai-dynamo", "cuda", "python"} <= ok_names


def test_release_label_must_be_the_selected_release(tmp_path: Path, matrix: Matrix) -> None:
    unknown = write_oci_layout(
        tmp_path / "unknown", good_spec(labels={**GOOD_LABELS, "org.buildmatrix.release": "v9.9"})
    )
    selected = (matrix.find_release(RELEASE),)
    assert failed_names(run_verify(matrix, images=(str(unknown),), releases=selected)) == {
        "org.buildmatrix.release"
    }
    good = write_oci_layout(tmp_path / "good", good_spec())
    other = run_verify(matrix, images=(str(good),), releases=(matrix.find_release("main"),))
    [check] = [c for c in image_checks(other) if not c.ok]
    assert check.detail == "the image belongs to another release than the one selected"


def test_missing_labels_and_escaping_paths_fail(tmp_path: Path, matrix: Matrix) -> None:
    layers = [*good_layers(), [Entry("../outside", b"x")]]
    layout = write_oci_layout(tmp_path / "img", good_spec(labels={}, layers=layers))
    report = run_verify(matrix, images=(str(layout),), releases=(matrix.find_release(RELEASE),))
    failed = failed_names(report)
    assert {"org.buildmatrix.release", "org.buildmatrix.framework"} <= failed
    layout2 = write_oci_layout(tmp_path / "img2", good_spec(layers=layers))
    failed2 = failed_names(run_verify(matrix, images=(str(layout2),)))
    assert failed2 == {"layer paths"}


def test_multi_arch_image_checks_each_platform(tmp_path: Path, matrix: Matrix) -> None:
    arm_layers = good_layers()
    arm_layers[1] = [e for e in arm_layers[1] if "vllm-0.11.0" not in e.path] + [dist("vllm", "0.11.1")]
    layout = write_oci_layout(
        tmp_path / "img",
        good_spec(),
        good_spec(platform="linux/arm64", layers=arm_layers),
    )
    report = run_verify(matrix, images=(str(layout),))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.subject.rsplit(" ", 1)[-1], c.name) for c in failed] == [("(linux/arm64)", "vllm")]
    only_amd = run_verify(matrix, images=(str(layout),), platform="linux/amd64")
    assert all(c.ok for c in image_checks(only_amd))


def test_unreadable_image_reports_the_other_checks(tmp_path: Path, matrix: Matrix) -> None:
    good = write_oci_layout(tmp_path / "good", good_spec())
    report = run_verify(matrix, images=(str(tmp_path / "missing.tar"), str(good)))
    assert report.exit_code == 2
    assert any("missing.tar" in error for error in report.errors)
    assert image_checks(report)
    assert all(c.ok for c in image_checks(report))
