"""buildmatrix.layers.tarstream: the tar reader agrees with tarfile and refuses bad headers."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildmatrix.layers.tarstream import TarStream

_NAMES = st.lists(
    st.text(alphabet="abcé_-.", min_size=1, max_size=40).filter(lambda part: part not in (".", "..")),
    min_size=1,
    max_size=8,
).map("/".join)


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
