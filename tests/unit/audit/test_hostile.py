"""The audit attacked: hostile and odd wheels get the right verdict, naming the member.

Where auditwheel has a verdict on the same wheel, the test checks ours against
``auditwheel show --ldpaths ""``; ELF files are crafted from a real gcc build
with pyelftools locating the structures to damage.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from buildmatrix.audit import audit_wheel, elf, printable, wheelscan
from buildmatrix.audit.inflate import MemberReader
from buildmatrix.audit.runpath import confine_run_paths
from tests.conftest import MATRIX_PATH
from tests.unit.audit.test_gate import (
    EXT,
    assert_agrees_with_auditwheel,
    compile_so,
    extension,
    kinds,
    make_wheel,
)

LOG2 = "#include <math.h>\ndouble f(double x){return log2(x);}"  # log2@GLIBC_2.29


@pytest.fixture(scope="module")
def gcc() -> str:
    found = shutil.which("gcc")
    if found is None:
        pytest.fail("gcc is needed to build the test wheels (apt-get install gcc)")
    return found


def auditwheel_fails(wheel: Path) -> str:
    """auditwheel's error output for a wheel it refuses (and that it does refuse it)."""
    done = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", "--ldpaths", "", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    return done.stderr + done.stdout


# ------------------------------------------------------------ duplicates


def test_every_copy_of_a_duplicated_member_is_analysed(gcc: str, tmp_path: Path) -> None:
    clean = compile_so(gcc, tmp_path / "a", "ext", extension()).read_bytes()
    newer = compile_so(gcc, tmp_path / "b", "ext", extension(LOG2), "-lm").read_bytes()
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: clean})
    with warnings.catch_warnings(), zipfile.ZipFile(wheel, "a") as archive:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        archive.writestr(EXT, newer)
    audit = audit_wheel(wheel)
    assert not audit.ok
    by_kind = {(v.kind, v.file) for v in audit.violations}
    assert ("corrupt", EXT) in by_kind
    assert ("glibc-underclaim", f"{EXT} [copy 2]") in by_kind
    assert any("log2@GLIBC_2.29" in v.detail for v in audit.violations)
    assert audit.glibc == "2.29"  # the second copy counts
    # A member named like a copy's label hides nothing either.
    decoy = make_wheel(tmp_path / "decoy", "manylinux_2_17_x86_64", {EXT: clean, f"{EXT} [copy 2]": clean})
    with warnings.catch_warnings(), zipfile.ZipFile(decoy, "a") as archive:
        warnings.simplefilter("ignore")
        archive.writestr(EXT, newer)
    assert ("glibc-underclaim", f"{EXT} [copy 2] [again]") in {
        (v.kind, v.file) for v in audit_wheel(decoy).violations
    }


# ------------------------------------------------------------ architecture


def test_elf_for_a_foreign_cpu_is_a_violation_not_skipped(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension()).read_bytes()
    mips = so[:18] + (8).to_bytes(2, "little") + so[20:]  # e_machine = EM_MIPS
    cubin = so[:18] + (190).to_bytes(2, "little") + so[20:]  # e_machine = EM_CUDA
    bpf = so[:18] + (247).to_bytes(2, "little") + so[20:]  # e_machine = EM_BPF
    members = {"demo/_m.so": mips, "demo/k.cubin": cubin, "demo/probe.o": bpf}
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", members)
    audit = audit_wheel(wheel)
    assert not audit.ok
    ((kind, member, detail),) = [(v.kind, v.file, v.detail) for v in audit.violations]
    assert (kind, member) == ("isa", "demo/_m.so")
    assert "e_machine 8" in detail
    assert set(dict(audit.skipped_elf)) == {"demo/k.cubin", "demo/probe.o"}
    # Code for no CPU alone is still nothing to police.
    only_gpu = make_wheel(tmp_path / "gpu", "manylinux_2_17_x86_64", {"demo/k.cubin": cubin})
    assert audit_wheel(only_gpu).ok


# ------------------------------------------------------------ plain linux tags


def test_plain_linux_tag_is_reported_not_policed(gcc: str, tmp_path: Path) -> None:
    source = extension("extern double PyFPE_jbuf[8];\ndouble fpe(void){return PyFPE_jbuf[0];}")
    so = compile_so(gcc, tmp_path / "build", "ext", source, "-Wl,--unresolved-symbols=ignore-all")
    plain = make_wheel(tmp_path / "plain", "linux_x86_64", {EXT: so.read_bytes()})
    audit = audit_wheel(plain)
    assert audit.ok, audit.violations
    assert audit.overall_tag == "linux_x86_64"
    assert any("promises nothing" in note for note in audit.notes)
    assert_agrees_with_auditwheel(audit, plain)
    tagged = make_wheel(tmp_path / "tagged", "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    strict = audit_wheel(tagged)
    assert kinds(strict) == {"glibc-underclaim"}
    assert any("PyFPE_jbuf" in v.detail for v in strict.violations)


# ------------------------------------------------------------ layout


def test_extension_in_purelib_is_refused_like_auditwheel(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    member = "demo-1.0.data/purelib/demo/_ext.cpython-311-x86_64-linux-gnu.so"
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {member: so.read_bytes()})
    audit = audit_wheel(wheel)
    assert [(v.kind, v.file) for v in audit.violations] == [("layout", member)]
    assert "purelib" in auditwheel_fails(wheel)


def test_zip_without_dist_info_is_not_a_wheel(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    wheel = tmp_path / "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(EXT, so.read_bytes())
    audit = audit_wheel(wheel)
    ((violation),) = audit.violations
    assert (violation.kind, violation.file) == ("layout", wheel.name)
    assert "dist-info" in violation.detail
    # auditwheel repair refuses it for the same reason.
    done = subprocess.run(
        [sys.executable, "-m", "auditwheel", "repair", "-w", str(tmp_path / "out"), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "exactly one `*.dist_info` directory" in done.stderr + done.stdout


# ------------------------------------------------------------ libc


def test_extension_naming_no_libc_is_reported(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension(), "-nostdlib")
    member = "demo/_ext.abi3.so"  # a -linux-gnu.so name would tell glibc, as in auditwheel
    wheel = make_wheel(tmp_path, "linux_x86_64", {member: so.read_bytes()})
    audit = audit_wheel(wheel)
    assert [(v.kind, v.file) for v in audit.violations] == [("libc", member)]
    assert audit.libc == "unknown"
    assert "couldn't detect libc" in auditwheel_fails(wheel)
    # A manylinux tag names the libc itself.
    tagged = make_wheel(tmp_path / "t", "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    assert audit_wheel(tagged).ok
    assert audit_wheel(tagged).libc == "glibc"


def test_library_naming_no_libc_is_a_note(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "helper", "int helper(void){return 1;}", "-nostdlib")
    wheel = make_wheel(tmp_path, "linux_x86_64", {"demo/libhelper.so": so.read_bytes()})
    audit = audit_wheel(wheel)
    assert audit.ok, audit.violations
    assert audit.libc == "unknown"
    assert any("names its libc" in note for note in audit.notes)
    assert_agrees_with_auditwheel(audit, wheel)


# ------------------------------------------------------------ run paths


def test_run_paths_outside_the_wheel_are_violations(gcc: str, tmp_path: Path) -> None:
    build = tmp_path / "build"
    absolute = compile_so(gcc, build, "abs", extension(), "-Wl,-rpath,/opt/build/lib:$ORIGIN/../d.libs")
    relative = compile_so(gcc, build, "rel", extension(), "-Wl,--disable-new-dtags,-rpath,lib")
    origin = compile_so(gcc, build, "ok", extension(), "-Wl,-rpath,$ORIGIN/../../nvidia/lib")
    for so, expected in ((absolute, "RUNPATH entry /opt/build/lib"), (relative, "RPATH entry lib")):
        wheel = make_wheel(tmp_path / so.stem, "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
        audit = audit_wheel(wheel)
        ((violation),) = audit.violations
        assert (violation.kind, violation.file) == ("rpath", EXT)
        assert violation.detail.startswith(expected)
        assert_agrees_with_auditwheel(audit, wheel)  # the tags are auditwheel's all the same
    fine = make_wheel(tmp_path / "fine", "manylinux_2_17_x86_64", {EXT: origin.read_bytes()})
    assert audit_wheel(fine).ok


# ------------------------------------------------------------ output


def test_control_characters_are_escaped_in_the_table(
    gcc: str, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension(LOG2), "-lm")
    hostile = "demo/\x1b[2K\r\x1b[32mall good\x1b[0m.cpython-311-x86_64-linux-gnu.so"
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {hostile: so.read_bytes()})
    result = cli("audit", wheel, "--matrix", MATRIX_PATH)
    assert result.code == 1
    assert "\x1b" not in result.out
    assert "\r" not in result.out
    assert "demo/\\x1b[2K\\x0d\\x1b[32mall good" in result.out
    assert printable("a\u202eb\\") == "a\\u202eb\\\\"
    # JSON keeps the exact name; its own escaping keeps the terminal safe.
    result = cli("audit", wheel, "--format", "json", "--matrix", MATRIX_PATH)
    assert result.code == 1
    assert "\x1b" not in result.out
    (record,) = json.loads(result.out)
    assert {v["file"] for v in record["violations"]} == {hostile}


# ------------------------------------------------------------ bounded


@pytest.fixture(scope="module")
def sample(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An ELF needing versions from two libraries (libm and libc): two verneed entries."""
    folder = tmp_path_factory.mktemp("sample")
    source = extension(LOG2 + '\n#include <stdio.h>\nint hi(void){return puts("hi");}')
    return compile_so(gcc, folder, "ext", source, "-lm").read_bytes()


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


# ------------------------------------------------------------ inflate


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


def test_json_lists_libc_and_notes(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    wheel = make_wheel(tmp_path, "linux_x86_64", {EXT: so.read_bytes()})
    record = json.loads(json.dumps(audit_wheel(wheel).to_json()))
    assert record["libc"] == "glibc"
    assert record["notes"]


def test_repair_drops_run_paths_that_leave_the_wheel(gcc: str, tmp_path: Path) -> None:
    """What the local backend runs after auditwheel repair (buildmatrix.audit.runpath)."""
    build = tmp_path / "build"
    runpath = compile_so(gcc, build, "a", extension(), "-Wl,-rpath,/root/py/lib:$ORIGIN/../d.libs:/x")
    rpath = compile_so(gcc, build, "b", extension(), "-Wl,--disable-new-dtags,-rpath,/root/py/lib")
    members = {EXT: runpath.read_bytes(), "demo/_b.cpython-311-x86_64-linux-gnu.so": rpath.read_bytes()}
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", members)
    assert kinds(audit_wheel(wheel)) == {"rpath"}
    names_before = zipfile.ZipFile(wheel).namelist()
    assert confine_run_paths(wheel) == sorted(members)
    audit = audit_wheel(wheel)
    assert audit.ok, audit.violations
    with zipfile.ZipFile(wheel) as archive:
        assert archive.namelist() == names_before
        kept = elf.read_elf(io.BytesIO(archive.read(EXT)))
        assert kept is not None
        assert kept.runpath == "$ORIGIN/../d.libs"
        removed = elf.read_elf(io.BytesIO(archive.read("demo/_b.cpython-311-x86_64-linux-gnu.so")))
        assert removed is not None
        assert (removed.rpath, removed.runpath) == (None, None)
        record = archive.read("demo-1.0.dist-info/RECORD").decode()
        data = archive.read(EXT)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert f"{EXT},sha256={digest},{len(data)}" in record.splitlines()
    before = wheel.read_bytes()
    assert confine_run_paths(wheel) == []  # nothing left to do: the file is untouched
    assert wheel.read_bytes() == before


def test_zip_bomb_member_is_corrupt_without_inflating(
    sample: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wheelscan, "BOMB_SIZE", 1 << 20)  # 1 MiB stands in for 1 GiB
    bomb = sample + bytes(8 << 20)  # an ELF followed by 8 MiB of zeros: deflates ~1000:1
    data = bytes(8 << 20)  # the same zeros without the ELF magic: data, not code
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: bomb, "demo/zeros.bin": data})
    audit = audit_wheel(wheel)
    ((violation),) = audit.violations
    assert (violation.kind, violation.file) == ("corrupt", EXT)
    assert "zip bomb" in violation.detail
