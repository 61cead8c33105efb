"""buildmatrix.layers.image: reading OCI layouts and archives layer by layer, whiteouts, compressions,
unsafe paths and unreadable images.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from buildmatrix.layers import ImageError, ScanRequest, open_image
from buildmatrix.verify.images import LIBNIXL_PATTERNS
from tests.support.ocifactory import (
    SITE,
    Entry,
    ImageSpec,
    good_layers,
    good_spec,
    metadata,
    write_oci_layout,
)


def test_reads_oci_layout_honouring_whiteouts(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    request = ScanRequest(
        distributions=frozenset({canonicalize_name("vllm"), canonicalize_name("nixl")}),
        files=frozenset({"/opt/buildmatrix/pins.json"}),
        library_patterns=LIBNIXL_PATTERNS,
    )
    with open_image(f"oci:{layout}") as views:
        assert len(views) == 1
        view = views[0]
        assert view.platform == "linux/amd64"
        assert view.labels["org.buildmatrix.pin.vllm"] == "0.11.0"
        result = view.scan(request)
    assert result.complete
    assert [d.version for d in result.distributions[canonicalize_name("vllm")]] == [Version("0.11.0")]
    assert result.distributions[canonicalize_name("vllm")][0].layer == 1
    # The base layer's copy is behind an opaque whiteout; the symlink is no copy.
    assert result.libraries == (f"/{SITE}/nixl_cu12/libnixl.so",)
    assert json.loads(result.files["/opt/buildmatrix/pins.json"])["release"] == "v0.7.1"
    assert result.unsafe_paths == ()


def test_quick_scan_stops_in_the_top_layer(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    request = ScanRequest(distributions=frozenset({canonicalize_name("vllm")}))
    with open_image(str(layout)) as (view,):
        result = view.scan(request)
    assert not result.complete
    assert (result.layers_read, result.layers_total) == (1, 2)


def test_later_layer_wins_for_the_same_path(tmp_path: Path) -> None:
    path = f"{SITE}/vllm-0.11.0.dist-info/METADATA"
    spec = ImageSpec(
        layers=[[Entry(path, metadata("vllm", "0.11.0"))], [Entry(path, metadata("vllm", "0.9.9"))]],
        labels={},
    )
    layout = write_oci_layout(tmp_path / "img", spec)
    with open_image(str(layout)) as (view,):
        result = view.scan(
            ScanRequest(distributions=frozenset({canonicalize_name("vllm")}), library_patterns=("x",))
        )
    assert [d.version for d in result.distributions[canonicalize_name("vllm")]] == [Version("0.9.9")]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_layer_compressions(tmp_path: Path, compression: str) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec(compression=compression))
    with open_image(str(layout)) as (view,):
        result = view.scan(ScanRequest(distributions=frozenset({canonicalize_name("nixl")})))
    assert result.distributions[canonicalize_name("nixl")][0].version == Version("0.7.1")


def test_unsafe_paths_are_reported_and_never_used(tmp_path: Path) -> None:
    layers = [
        *good_layers(),
        [
            Entry("../../etc/cron.d/evil", b"* * * * * root sh"),
            Entry(f"{SITE}/../../../../../tmp/vllm-9.9.9.dist-info/METADATA", metadata("vllm", "9.9.9")),
            Entry("etc/passwd-link", link="../../../etc/shadow", kind="hardlink"),
        ],
    ]
    layout = write_oci_layout(tmp_path / "img", good_spec(layers=layers))
    with open_image(str(layout)) as (view,):
        result = view.scan(
            ScanRequest(distributions=frozenset({canonicalize_name("vllm")}), library_patterns=("x",))
        )
    assert len(result.unsafe_paths) == 3
    assert [d.version for d in result.distributions[canonicalize_name("vllm")]] == [Version("0.11.0")]
    assert not (tmp_path / "etc").exists()


def test_unreadable_images_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "image.tar"
    garbage.write_bytes(b"not a tar" * 100)
    with pytest.raises(ImageError, match=r"not a tar archive"), open_image(str(garbage)):
        pass
    with pytest.raises(ImageError, match="does not exist"), open_image(f"oci:{tmp_path}/nope"):
        pass
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match=r"without index\.json"), open_image(str(empty)):
        pass


def test_corrupt_layer_is_an_image_error(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    index = json.loads((layout / "index.json").read_text())
    manifest_blob = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    top_layer = json.loads(manifest_blob.read_text())["layers"][-1]["digest"].split(":")[1]
    (layout / "blobs/sha256" / top_layer).write_bytes(gzip.compress(b"x" * 1000)[:50])
    with open_image(str(layout)) as (view,), pytest.raises(ImageError, match="layer sha256:"):
        view.scan(ScanRequest(distributions=frozenset({canonicalize_name("vllm")})))
