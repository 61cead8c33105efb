"""buildmatrix.installs.remotezip: wheels on the index read by range requests (few bytes), or whole
without ranges; a zip bomb member is refused.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from buildmatrix.installs.remotezip import RemoteWheel, WheelReadError
from buildmatrix.installs.scan import WheelFile, scan_wheels
from tests.support.localindex import serve_index


def test_remote_wheel_reads_few_bytes_with_ranges_and_everything_without(built: dict[str, Path]) -> None:
    wheel = built["patched"]
    for ranges in (True, False):
        with serve_index([wheel], ranges=ranges) as served:
            scans = scan_wheels(
                [
                    WheelFile(
                        wheel.name,
                        served.file_url(wheel.name),
                        hashlib.sha256(wheel.read_bytes()).hexdigest(),
                    )
                ],
                "x86_64",
                cache=None,
            )
            scan = scans[wheel.name]
            assert scan.errors == ()
            assert scan.elf_members == 1
            assert scan.set_by == "patched.libs/libpatched.so"
            assert scan.elf_glibc == "2.2.5"
            if ranges:
                assert served.full_requests == 0
                assert served.range_requests >= 1
                assert scan.bytes_read < wheel.stat().st_size / 2  # the 1 MiB data file was not read
            else:
                # The range request answered whole (dropped unread), then one download.
                assert served.full_requests == 2
                assert served.range_requests == 0
                assert scan.bytes_read == wheel.stat().st_size


def test_a_zip_bomb_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb-1.0-py3-none-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/lib.so", b"\x7fELF" + b"\0" * 5_000_000)
    raw = bytearray(path.read_bytes())
    # Make the central directory claim 10 bytes: the member inflates past that.
    at = raw.rfind(b"PK\x01\x02")
    raw[at + 24 : at + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with serve_index([path]) as served:
        wheel = RemoteWheel(served.file_url(path.name))
        with pytest.raises(WheelReadError, match="zip bomb"):
            wheel.open_member(wheel.members[0]).read(-1)
