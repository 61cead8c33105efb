"""buildmatrix.installs.verneed: the ELF version-need scan agrees with the full ELF reader."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from buildmatrix.audit.elf import read_elf
from buildmatrix.installs.verneed import GLIBC_BY_HASH, NeedScanner, elf_hash, glibc_of_version_name
from tests.support.installs import LONG_RPATH, _compile, _tool


def test_glibc_hashes_are_the_elf_hash_of_their_names() -> None:
    assert elf_hash(b"GLIBC_2.2.5") == 0x09691A75  # the value in every x86_64 binary's .gnu.version_r
    assert GLIBC_BY_HASH[elf_hash(b"GLIBC_2.29")] == "GLIBC_2.29"
    assert glibc_of_version_name("GLIBC_ABI_DT_RELR") == Version("2.36")
    assert glibc_of_version_name("GLIBCXX_3.4.29") is None
    assert glibc_of_version_name("GLIBC_PRIVATE") is None


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_scanner_agrees_with_the_full_elf_reader_on_a_patchelf_repaired_library(
    tmp_path: Path, chunk: int
) -> None:
    plain = _compile(
        tmp_path,
        "plain",
        '#include <stdio.h>\n#include <math.h>\nint hi(double x){return puts("hi") + (int)log2(x);}\n',
        "-lm",
    )
    path = tmp_path / "lib.so"
    path.write_bytes(plain)
    subprocess.run([_tool("patchelf"), "--set-rpath", LONG_RPATH, path], check=True)
    data = path.read_bytes()
    # patchelf moved the strings past the version-need table: the names are not at hand up front.
    assert data.rfind(b"GLIBC_2.29") > data.find(b"\x01\x00")
    scanner = NeedScanner("x86_64")
    state = "more"
    for start in range(0, len(data), chunk):
        state = scanner.feed(data[start : start + chunk])
        if state != "more":
            break
    assert state == "found"
    assert scanner.needs is not None
    full = read_elf(io.BytesIO(data))
    assert full is not None
    expected = {version for _library, version in full.version_needs if version.startswith("GLIBC_2")}
    assert set(scanner.needs.versions) == expected
    assert scanner.needs.glibc == Version("2.29")


def test_scanner_skips_other_cpus_and_non_elf(tmp_path: Path) -> None:
    data = bytearray(_compile(tmp_path, "plain", "int x(void){return 1;}\n"))
    data[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    assert NeedScanner("x86_64").feed(bytes(data)) == "other-arch"
    assert NeedScanner("x86_64").feed(b"#!/bin/sh\n") == "not-elf"
