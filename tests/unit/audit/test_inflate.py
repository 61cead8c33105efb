"""buildmatrix.audit.inflate: members read with their size and CRC checked."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from buildmatrix.audit.inflate import MemberReader


@pytest.mark.parametrize("zlib_module", [None, zlib], ids=["fastest", "stdlib"])
def test_member_reader_checks_size_and_crc(tmp_path: Path, zlib_module: Any) -> None:
    payload = bytes(range(256)) * 40000
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x", payload)
        archive.writestr("s", payload[:1000], compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:  # noqa: PTH123
        info = archive.getinfo("x")
        with MemberReader(handle.fileno(), info, zlib_module) as reader:
            assert reader.read(64) + reader.read(1 << 20) + reader.read() == payload
        with MemberReader(handle.fileno(), archive.getinfo("s"), zlib_module) as reader:
            assert reader.read() == payload[:1000]
        liar = zipfile.ZipInfo("x")
        for name in ("compress_type", "header_offset", "compress_size", "CRC", "flag_bits"):
            setattr(liar, name, getattr(info, name))
        liar.file_size = info.file_size - 1  # declares less than the stream holds: a bomb stops
        with pytest.raises(zipfile.BadZipFile, match="more data"):
            MemberReader(handle.fileno(), liar, zlib_module).read()
        liar.file_size, liar.CRC = info.file_size, info.CRC ^ 1
        with pytest.raises(zipfile.BadZipFile, match="CRC"):
            MemberReader(handle.fileno(), liar, zlib_module).read()
        liar.CRC, liar.compress_size = info.CRC, info.compress_size - 100
        with pytest.raises(zipfile.BadZipFile, match="truncated"):
            MemberReader(handle.fileno(), liar, zlib_module).read()
