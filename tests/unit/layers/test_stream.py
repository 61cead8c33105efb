"""buildmatrix.layers.stream: the forward-only layer reader."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from buildmatrix.layers.stream import ForwardReader, members, open_layer_tar
from tests.support.ocifactory import SITE, Entry, dist, layer_tar


def test_layer_stream_gzip_members_padding_and_large_skips() -> None:
    big = Entry("opt/zeros.bin", b"\0" * (64 * 1024 * 1024))  # 64 MiB inflating from ~64 KiB
    raw = layer_tar([big, dist("vllm", "0.11.0")])
    # Two gzip members back to back (what pigz or concatenation writes), then padding.
    data = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]) + b"\0" * 512
    with open_layer_tar(io.BytesIO(data)) as archive:
        names = []
        for member in members(archive):
            names.append(member.name)
            if member.name.endswith("METADATA"):
                handle = archive.extractfile(member)
                assert handle is not None
                assert b"Version: 0.11.0" in handle.read()
        assert names == ["opt/zeros.bin", f"{SITE}/vllm-0.11.0.dist-info/METADATA"]
        assert archive.getmembers() == []  # nothing is remembered


def test_layer_stream_refuses_to_seek_back_and_reports_truncation() -> None:
    chunks = [b"abcdef"]
    reader = ForwardReader(lambda _limit: chunks.pop() if chunks else b"")
    assert reader.read(2) == b"ab"
    assert reader.seek(4) == 4
    assert reader.read() == b"ef"
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(1)
    whole = gzip.compress(layer_tar([Entry("opt/random.bin", os.urandom(200_000)), dist("vllm", "0.11.0")]))
    truncated = whole[: len(whole) // 2]
    with pytest.raises((EOFError, tarfile.TarError)), open_layer_tar(io.BytesIO(truncated)) as archive:
        list(members(archive))
