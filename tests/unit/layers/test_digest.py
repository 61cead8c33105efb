"""buildmatrix.layers.digest: blobs checked against their digests while they stream; a layer
or config swapped on disk under the good digest fails naming the blob.

Every image is an OCI layout (or docker-save tarball) written by the test with
``tests.support.ocifactory``, then attacked on disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from buildmatrix.layers import BlobDigestError, ScanRequest, open_image
from buildmatrix.layers.digest import DigestReader, parse_digest
from buildmatrix.model import Matrix
from tests.support.ocifactory import (
    Entry,
    _blob,
    _manifest,
    good_layers,
    good_spec,
    layer_tar,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)
from tests.support.verifying import _failed, image_checks, run_verify


def test_backdoored_layer_under_the_good_digest_fails_naming_the_blob(tmp_path: Path, matrix: Matrix) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    top = _manifest(layout)["layers"][-1]
    # The attacker's layer: same files, but a vLLM of their own. Same size is no help.
    backdoor = gzip.compress(layer_tar([*good_layers()[1], Entry("usr/bin/backdoor", b"#!/bin/sh\n")]))
    good = _blob(layout, top["digest"]).read_bytes()
    # Same length as the good blob (so only the hash can tell), then longer than it.
    same_size = backdoor[: len(good)] if len(backdoor) >= len(good) else backdoor.ljust(len(good), b"\0")
    for tampered, found in (
        (same_size, "sha256:" + hashlib.sha256(same_size).hexdigest()),
        (backdoor + b"\0" * len(good), f"over {len(good)} bytes"),
    ):
        _blob(layout, top["digest"]).write_bytes(tampered)
        for quick in (False, True):  # --quick stops early in this layer, yet hashes all of it
            report = run_verify(matrix, images=(str(layout),), quick=quick)
            failed = _failed(report)
            assert list(failed) == [f"blob {top['digest']}"], failed
            check = failed[f"blob {top['digest']}"]
            assert (check.expected, check.found) == (top["digest"], found)
            assert f"layer {top['digest']}" in check.detail
            # Nothing read from the tampered image is reported as holding.
            assert not [c for c in image_checks(report) if c.ok and c.subject.startswith(str(layout))]
            assert report.exit_code == 1


def test_swapped_config_fails_naming_the_config(tmp_path: Path, matrix: Matrix) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    config = _manifest(layout)["config"]
    path = _blob(layout, config["digest"])
    swapped = json.loads(path.read_text())
    swapped["config"]["Labels"]["org.buildmatrix.pin.vllm"] = "0.11.0"  # same, but
    swapped["config"]["Labels"]["org.buildmatrix.release"] = "main"  # another release
    path.write_text(json.dumps(swapped))
    report = run_verify(matrix, images=(str(layout),))
    assert list(_failed(report)) == [f"blob {config['digest']}"]
    assert report.exit_code == 1
    # A manifest swapped under its digest in an OCI archive is caught the same way.
    good = write_oci_layout(tmp_path / "good", good_spec())
    index = json.loads((good / "index.json").read_text())
    manifest_blob = _blob(good, index["manifests"][0]["digest"])
    manifest_blob.write_text(manifest_blob.read_text().replace('"schemaVersion": 2', '"schemaVersion":2'))
    archive = write_oci_archive(tmp_path / "img.tar", good)
    assert list(_failed(run_verify(matrix, images=(f"oci-archive:{archive}",)))) == [
        f"blob {index['manifests'][0]['digest']}"
    ]


def test_layer_longer_than_its_descriptor_is_refused(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "img", good_spec())
    top = _manifest(layout)["layers"][-1]
    with _blob(layout, top["digest"]).open("ab") as handle:
        handle.write(b"\0" * 4096)  # gzip ignores trailing padding; the size does not
    with open_image(str(layout)) as (view,), pytest.raises(BlobDigestError) as caught:
        view.scan(ScanRequest(distributions=frozenset({canonicalize_name("vllm")})))
    assert caught.value.blob == top["digest"]
    assert "longer than" in caught.value.message


def test_docker_archive_layers_are_checked_against_the_diff_ids(tmp_path: Path, matrix: Matrix) -> None:
    saved = write_docker_archive(tmp_path / "good.tar", good_spec())
    assert all(c.ok for c in image_checks(run_verify(matrix, images=(str(saved),))))
    tampered = tmp_path / "tampered.tar"
    evil_top = layer_tar([*good_layers()[1], Entry("usr/bin/backdoor", b"x")])
    with tarfile.open(saved) as source, tarfile.open(tampered, "w") as target:
        manifest = json.loads(source.extractfile("manifest.json").read())  # type: ignore[union-attr]
        top_name = manifest[0]["Layers"][-1]
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == top_name:
                data = evil_top
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    failed = _failed(run_verify(matrix, images=(str(tampered),)))
    assert list(failed) == [f"blob sha256:{top_name.split('/')[0]}"]
    assert f"layer {top_name}" in failed[f"blob sha256:{top_name.split('/')[0]}"].detail


def test_digests_that_are_not_digests_are_refused(tmp_path: Path) -> None:
    for bad in ("sha256:../../etc", "md5:" + "0" * 32, "sha256:" + "A" * 64, "sha256:abc", "sha256"):
        with pytest.raises(ValueError, match="digest"):
            parse_digest(bad)
    data = b"hello"
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    reader = DigestReader(io.BytesIO(data), good, "layer", size=5)
    assert reader.read(2) == b"he"
    reader.verify()  # drains the rest, then compares
    assert reader.bytes_read == 5
    with pytest.raises(BlobDigestError, match="5 bytes, its descriptor says 6"):
        DigestReader(io.BytesIO(data), good, "layer", size=6).verify()
