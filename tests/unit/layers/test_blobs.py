"""Images verified as a container sees them: blobs checked against their digests
while they stream, layers applied with overlay semantics, ``--quick`` honest
about what it did not read.

Every image is an OCI layout (or docker-save tarball) written by the test with
the builders of ``tests.test_verify``, then attacked on disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from buildmatrix.layers import BlobDigestError, ScanRequest, open_image
from buildmatrix.layers.digest import DigestReader, parse_digest
from buildmatrix.layers.tarstream import TarStream
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from tests.unit.verify.test_verify import (
    REPO_ROOT,
    SITE,
    Entry,
    dist,
    good_layers,
    good_spec,
    image_checks,
    layer_tar,
    run_verify,
    write_docker_archive,
    write_oci_archive,
    write_oci_layout,
)


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO_ROOT / "matrix.toml")


def _manifest(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def _failed(report: Any) -> dict[str, Any]:
    return {c.name: c for c in image_checks(report) if not c.ok}


# --------------------------------------------------------------------------- digests


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


# --------------------------------------------------------------------------- overlay semantics


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


# --------------------------------------------------------------------------- --quick


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


# --------------------------------------------------------------------------- the tar reader


def _tar(entries: list[tuple[str, str, bytes]], fmt: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = data.decode()
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


_NAMES = st.lists(
    st.text(alphabet="abcé_-.", min_size=1, max_size=40).filter(lambda part: part not in (".", "..")),
    min_size=1,
    max_size=8,
).map("/".join)


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(
        st.tuples(_NAMES, st.sampled_from(["file", "dir", "symlink", "hardlink"]), st.binary(max_size=1500)),
        max_size=12,
    ),
    fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
)
def test_tar_reader_agrees_with_tarfile(entries: list[tuple[str, str, bytes]], fmt: int) -> None:
    """Names (long ones via PAX, GNU L/K records or the ustar prefix), types, sizes, link
    targets and data: exactly what tarfile reads, on every format it writes."""
    if fmt == tarfile.USTAR_FORMAT:
        entries = [e for e in entries if len(e[0].encode()) <= 100 and e[0].isascii()]
    entries = [
        (n, k, d if k not in {"symlink", "hardlink"} else b"target/" + n.encode()) for n, k, d in entries
    ]
    raw = _tar(entries, fmt)
    expected = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        for member in archive:
            handle = archive.extractfile(member) if member.isfile() else None
            expected.append((member.name, member.isdir(), member.issym(), member.islnk(), member.linkname,
                             handle.read() if handle else b""))  # fmt: skip
    found = []
    reader = TarStream(io.BytesIO(raw))
    for entry in reader:
        data = reader.read(entry.size) if entry.isfile() else b""
        found.append((entry.name, entry.isdir(), entry.issym(), entry.islnk(), entry.linkname, data))
    assert found == expected


def test_tar_reader_refuses_bad_headers() -> None:
    raw = bytearray(_tar([("usr/lib/a.so", "file", b"x" * 600), ("b", "file", b"y")], tarfile.USTAR_FORMAT))
    raw[1536 + 10] ^= 0x01  # the second header's name, after the first file's header and two data blocks
    with pytest.raises(tarfile.ReadError, match="checksum"):
        list(TarStream(io.BytesIO(bytes(raw))))
    whole = _tar([("opt/big.bin", "file", b"z" * 2000)], tarfile.USTAR_FORMAT)
    truncated = whole[:1000]  # the header, then 488 of the 2000 data bytes
    reader = TarStream(io.BytesIO(truncated))
    entry = next(iter(reader))
    with pytest.raises(tarfile.ReadError, match="unexpected end"):
        reader.read(entry.size)
    # A PAX path overrides the header's name: a scan must see what tar extracts.
    overridden = _tar([("../../etc/evil", "file", b"x")], tarfile.PAX_FORMAT)
    assert [e.name for e in TarStream(io.BytesIO(overridden))] == ["../../etc/evil"]
