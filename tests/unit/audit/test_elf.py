"""buildmatrix.audit.elf: the bounded ELF reader on real gcc output, damaged at random or on purpose."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildmatrix.audit import audit_wheel, elf
from tests.support.elffactory import (
    EXT,
    compile_so,
    extension,
    make_wheel,
)


def test_second_pass_reads_tables_outside_the_kept_ranges(
    gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing kept speculatively, a second pass must find the same facts."""
    source = extension("#include <math.h>\ndouble f(double x){return log2(x);}")
    so = compile_so(gcc, tmp_path, "ext", source, "-lm").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m.so", so)
    with zipfile.ZipFile(buffer) as archive:
        with archive.open("m.so") as stream:
            normal = elf.read_elf(stream)
        monkeypatch.setattr(elf, "PREFIX_CAP", 64)
        monkeypatch.setattr(elf, "SEGMENT_CAP", 0)
        monkeypatch.setattr(elf, "TAIL_WINDOW", 0)
        opened = []

        def reopen() -> Any:
            opened.append(True)
            return archive.open("m.so")

        with archive.open("m.so") as stream:
            again = elf.read_elf(stream, reopen)
        with archive.open("m.so") as stream, pytest.raises(elf.ElfError):
            elf.read_elf(stream)  # no way to reopen: says so instead of guessing
    assert opened == [True]
    assert again == normal
    assert normal is not None
    assert ("libm.so.6", "GLIBC_2.29") in normal.version_needs
    assert normal.symbols_by_version["GLIBC_2.29"] == ("log2",)


@pytest.fixture(scope="module")
def sample_so(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("sample")
    source = extension("#include <math.h>\ndouble f(double x){return log2(x);}")
    return compile_so(gcc, folder, "ext", source, "-lm").read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_elf_parses_or_is_reported_never_crashes(sample_so: bytes, data: st.DataObject) -> None:
    """Any damage to the header, tables or tail is either harmless or an ElfError."""
    damaged = bytearray(sample_so)
    regions = [(0, 0x1000), (len(damaged) - 0x1000, len(damaged))]
    for _ in range(data.draw(st.integers(1, 8))):
        start, end = data.draw(st.sampled_from(regions))
        position = data.draw(st.integers(start, end - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(damaged))))
    blob = bytes(damaged if cut is None else damaged[:cut])
    try:
        info = elf.read_elf(io.BytesIO(blob), lambda: io.BytesIO(blob))
    except elf.ElfError:
        return
    assert info is None or isinstance(info.needed, tuple)


def _section(blob: bytes, name: str) -> tuple[int, int]:
    """(header offset, data offset) of a section, located with pyelftools."""
    parsed = ELFFile(io.BytesIO(blob))
    for index, section in enumerate(parsed.iter_sections()):
        if section.name == name:
            return parsed["e_shoff"] + index * parsed["e_shentsize"], section["sh_offset"]
    raise AssertionError(name)


def _read_bounded(blob: bytes) -> str:
    """The ElfError for ``blob``, checking that reading it stays small in memory."""
    tracemalloc.start()
    try:
        with pytest.raises(elf.ElfError) as caught:
            elf.read_elf(io.BytesIO(blob), lambda: io.BytesIO(blob))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(blob) * 3 + (8 << 20), peak
    return str(caught.value)


def test_looping_version_need_chain_is_corrupt(sample: bytes) -> None:
    header, data = _section(sample, ".gnu.version_r")
    assert struct.unpack_from("<I", sample, header + 44)[0] == 2  # sh_info: two entries
    looping = bytearray(sample)
    struct.pack_into("<I", looping, header + 44, 0xFFFFFFFF)  # sh_info: 4 billion entries
    struct.pack_into("<I", looping, data + 12, 0)  # vn_next = 0: the chain revisits entry 0
    assert "version_r" in _read_bounded(bytes(looping))
    short = bytearray(sample)
    struct.pack_into("<I", short, data + 12, 0)  # two entries, the first one ends the chain
    assert "version_r" in _read_bounded(bytes(short))


def test_extended_section_count_is_bounded(sample: bytes) -> None:
    padded = bytearray(sample) + bytes(1 << 20)  # a 1 MB file
    struct.pack_into("<H", padded, 0x3C, 0)  # e_shnum = 0: the count lives in section 0
    struct.pack_into("<H", padded, 0x3A, 1)  # e_shentsize = 1
    assert "section header entry size" in _read_bounded(bytes(padded))
    struct.pack_into("<H", padded, 0x3A, 64)
    shoff = struct.unpack_from("<Q", padded, 0x28)[0]
    struct.pack_into("<Q", padded, shoff + 32, 1 << 40)  # section 0's sh_size: the count
    assert "section header table" in _read_bounded(bytes(padded))


def test_huge_tables_are_refused_not_allocated(sample: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    header, _data = _section(sample, ".dynsym")
    huge = bytearray(sample)
    struct.pack_into("<Q", huge, header + 32, 1 << 40)  # sh_size of .dynsym: 1 TB
    assert "runs past the end" in _read_bounded(bytes(huge)) or "implausible" in _read_bounded(bytes(huge))
    monkeypatch.setattr(elf, "TABLE_BUDGET", 64)  # a budget smaller than this file's tables
    assert "implausible dynamic tables" in _read_bounded(sample)


def test_corrupt_member_in_a_wheel_names_it(sample: bytes, tmp_path: Path) -> None:
    header, data = _section(sample, ".gnu.version_r")
    looping = bytearray(sample)
    struct.pack_into("<I", looping, header + 44, 0xFFFFFFFF)
    struct.pack_into("<I", looping, data + 12, 0)
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: bytes(looping)})
    audit = audit_wheel(wheel)
    assert [(v.kind, v.file) for v in audit.violations] == [("corrupt", EXT)]
