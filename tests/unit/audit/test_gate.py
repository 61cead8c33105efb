"""The glibc tag audit on wheels built here with gcc, and on real wheels from PyPI.

Every verdict that auditwheel also gives is checked against
``auditwheel show --ldpaths "" --json`` on the same wheel, so these tests
prove agreement rather than restate our own answers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildmatrix.audit import WheelAudit, audit_wheel, audit_wheels, elf
from buildmatrix.audit import gate as audit_module
from buildmatrix.errors import UsageError
from buildmatrix.model import Matrix
from tests.conftest import MATRIX_PATH

EXT = "demo/_ext.cpython-311-x86_64-linux-gnu.so"  # the module is `_ext`: PyInit__ext


@pytest.fixture(scope="module")
def gcc() -> str:
    found = shutil.which("gcc")
    if found is None:
        pytest.fail("gcc is needed to build the test wheels (apt-get install gcc)")
    return found


def compile_so(gcc: str, folder: Path, name: str, source: str, *args: str | os.PathLike[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{name}.c"
    src.write_text(source)
    out = folder / f"{name}.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-fno-builtin", "-o", out, src, *args],
        check=True,
        capture_output=True,
    )
    return out


def extension(body: str = "", init_returns: str = "0") -> str:
    """C source of a module `_ext` (no Python headers needed to look like one)."""
    return f"{body}\nvoid *PyInit__ext(void) {{ return (void *){init_returns}; }}\n"


def make_wheel(folder: Path, platform: str, members: Mapping[str, bytes], *, name: str = "demo") -> Path:
    dist_info = f"{name}-1.0.dist-info"
    path = folder / f"{name}-1.0-cp311-cp311-{platform}.whl"
    files = dict(members)
    files[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-{platform}\n"
    ).encode()
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
    record = "".join(f"{member},,\n" for member in files) + f"{dist_info}/RECORD,,\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def auditwheel_show(wheel: Path) -> dict[str, Any]:
    """auditwheel's own hermetic verdict, to compare ours with."""
    done = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", "--ldpaths", "", "--json", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_agrees_with_auditwheel(audit: WheelAudit, wheel: Path) -> None:
    reference = auditwheel_show(wheel)
    assert (audit.sym_tag, audit.overall_tag) == (reference["sym_tag"], reference["overall_tag"])
    assert list(audit.external_libs) == sorted(reference["external_libs"])
    ours = {lib: list(versions) for lib, versions in audit.versioned_symbols}
    assert ours == reference["versioned_symbols"]


def kinds(audit: WheelAudit) -> set[str]:
    return {v.kind for v in audit.violations}


# ------------------------------------------------------------ verdicts


def test_clean_extension_is_ok_and_agrees(gcc: str, tmp_path: Path) -> None:
    so = compile_so(
        gcc, tmp_path / "build", "ext", extension('#include <stdio.h>\nint hi(void){return puts("hi");}')
    )
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    audit = audit_wheel(wheel)
    assert audit.ok, audit.violations
    assert not audit.pure
    assert audit.glibc == "2.2.5"
    assert audit.sym_tag == "manylinux_2_5_x86_64"
    assert_agrees_with_auditwheel(audit, wheel)
    (info,) = audit.files
    assert info.file == EXT
    assert "libc.so.6" in info.needed
    assert info.bundled == ()


def test_symbol_newer_than_the_tag_is_an_underclaim(gcc: str, tmp_path: Path) -> None:
    source = extension("#include <math.h>\ndouble f(double x){return log2(x);}")
    so = compile_so(gcc, tmp_path / "build", "ext", source, "-lm")
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    audit = audit_wheel(wheel)
    assert not audit.ok
    assert audit.glibc == "2.29"  # exact, where the tag rounds up to manylinux_2_31
    assert audit.sym_tag == "manylinux_2_31_x86_64"
    underclaims = [v for v in audit.violations if v.kind == "glibc-underclaim"]
    assert underclaims, audit.violations
    assert {v.file for v in underclaims} == {EXT}
    assert any("log2@GLIBC_2.29" in v.detail for v in underclaims)
    assert_agrees_with_auditwheel(audit, wheel)
    # The same binary tagged for what it needs is fine.
    honest = make_wheel(tmp_path / "honest", "manylinux_2_31_x86_64", {EXT: so.read_bytes()})
    assert audit_wheel(honest).ok


def test_symver_directive_requires_an_exact_version(gcc: str, tmp_path: Path) -> None:
    source = extension(
        "#include <string.h>\n"
        '__asm__(".symver memcpy, memcpy@GLIBC_2.14");\n'
        "void *copy(void *d, const void *s, size_t n){return memcpy(d, s, n);}"
    )
    so = compile_so(gcc, tmp_path / "build", "ext", source)
    old_tag = make_wheel(tmp_path / "a", "manylinux_2_12_x86_64", {EXT: so.read_bytes()})
    audit = audit_wheel(old_tag)
    assert audit.glibc == "2.14"
    assert audit.sym_tag == "manylinux_2_17_x86_64"
    assert kinds(audit) == {"glibc-underclaim"}
    assert any("memcpy@GLIBC_2.14" in v.detail for v in audit.violations)
    assert_agrees_with_auditwheel(audit, old_tag)
    right_tag = make_wheel(tmp_path / "b", "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    assert audit_wheel(right_tag).ok


def test_floor_policy_catches_a_tag_newer_than_the_floor(gcc: str, tmp_path: Path) -> None:
    source = extension("#include <math.h>\ndouble f(double x){return log2(x);}")
    so = compile_so(gcc, tmp_path / "build", "ext", source, "-lm")
    wheel = make_wheel(tmp_path, "manylinux_2_34_x86_64", {EXT: so.read_bytes()})
    assert audit_wheel(wheel).ok  # honest about its own tag
    audit = audit_wheel(wheel, policy="manylinux_2_28")
    assert kinds(audit) == {"policy"}
    details = {(v.file, v.detail) for v in audit.violations}
    assert any(f == wheel.name and "newer than the floor" in d for f, d in details)
    assert any(f == EXT and "log2@GLIBC_2.29" in d for f, d in details)
    assert audit_wheel(wheel, policy="manylinux_2_34").ok
    with pytest.raises(UsageError, match="unknown policy"):
        audit_wheel(wheel, policy="manylinux_2_99")


def _libfoo(gcc: str, folder: Path) -> Path:
    return compile_so(gcc, folder, "libfoo", "int foo(void){return 42;}", "-Wl,-soname,libfoo.so.1")


def test_needed_library_not_bundled_is_external(
    gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = tmp_path / "build"
    _libfoo(gcc, build)
    (build / "libfoo.so.1").symlink_to(build / "libfoo.so")
    so = compile_so(
        gcc,
        build,
        "ext",
        extension("int foo(void);\nint g(void){return foo();}"),
        f"-L{build}",
        "-l:libfoo.so",
    )
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    audit = audit_wheel(wheel)
    assert audit.overall_tag == "linux_x86_64"
    assert audit.sym_tag == "manylinux_2_5_x86_64"
    assert audit.external_libs == ("libfoo.so.1",)
    (violation,) = audit.violations
    assert violation.kind == "external-lib"
    assert violation.file == EXT
    assert "libfoo.so.1" in violation.detail
    assert_agrees_with_auditwheel(audit, wheel)
    # Hermetic: the library on the host's search paths changes nothing.
    monkeypatch.setenv("LD_LIBRARY_PATH", str(build))
    monkeypatch.setenv("AUDITWHEEL_LD_LIBRARY_PATH", str(build))
    assert audit_wheel(wheel) == audit
    # Allowed for the package (as matrix.toml's external_libs would): fine.
    assert audit_wheel(wheel, allowed_external=["libfoo.so*"]).ok
    assert not audit_wheel(wheel, allowed_external=["libbar*.so*"]).ok


def test_bundled_library_on_the_run_path_is_fine(gcc: str, tmp_path: Path) -> None:
    build = tmp_path / "build"
    lib = _libfoo(gcc, build)
    so = compile_so(
        gcc,
        build,
        "ext",
        extension("int foo(void);\nint g(void){return foo();}"),
        f"-L{build}",
        "-l:libfoo.so",
        "-Wl,-rpath,$ORIGIN/../demo.libs",
    )
    members = {EXT: so.read_bytes(), "demo.libs/libfoo.so.1": lib.read_bytes()}
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", members)
    audit = audit_wheel(wheel)
    assert audit.ok, audit.violations
    assert audit.overall_tag == "manylinux_2_5_x86_64"
    by_file = {f.file: f for f in audit.files}
    assert by_file[EXT].bundled == ("libfoo.so.1",)
    assert_agrees_with_auditwheel(audit, wheel)
    # Bundled, but the run path does not lead to it: external, and the detail says where it is.
    (build / "plain").mkdir()
    plain = compile_so(
        gcc,
        build / "plain",
        "ext",
        extension("int foo(void);\nint g(void){return foo();}"),
        f"-L{build}",
        "-l:libfoo.so",
    )
    members[EXT] = plain.read_bytes()
    lost = make_wheel(tmp_path / "lost", "manylinux_2_17_x86_64", members)
    audit = audit_wheel(lost)
    (violation,) = audit.violations
    assert violation.kind == "external-lib"
    assert "bundled as demo.libs/libfoo.so.1 but not on the run path" in violation.detail
    assert_agrees_with_auditwheel(audit, lost)


def test_truncated_zip_is_corrupt_and_does_not_stop_the_others(
    gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    good = make_wheel(tmp_path / "good", "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    bad = tmp_path / "bad" / "broken-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    bad.parent.mkdir()
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    results = audit_wheels([bad, good])
    assert [r.wheel for r in results] == [bad.name, good.name]
    assert kinds(results[0]) == {"corrupt"}
    assert results[0].violations[0].file == bad.name
    assert results[0].unreadable
    assert results[1].ok
    # In batches of one wheel (as a huge wheelhouse is read): the same verdicts, in order.
    monkeypatch.setattr(audit_module, "WHEELS_PER_BATCH", 1)
    assert audit_wheels([bad, good, bad]) == [results[0], results[1], results[0]]


def test_member_with_a_bad_crc_is_corrupt(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    with zipfile.ZipFile(wheel) as archive:
        info = archive.getinfo(EXT)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        size = info.compress_size
    data = bytearray(wheel.read_bytes())
    data[start + size // 2] ^= 0xFF  # flip a bit in the deflated stream
    wheel.write_bytes(bytes(data))
    audit = audit_wheel(wheel)
    assert "corrupt" in kinds(audit)
    assert any(v.file == EXT for v in audit.violations if v.kind == "corrupt")


def test_members_outside_the_wheel_are_reported_never_written(
    gcc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    members = {EXT: so.read_bytes(), "../evil.so": so.read_bytes(), "/tmp/abs-evil.txt": b"x"}
    wheel = make_wheel(tmp_path / "w", "manylinux_2_17_x86_64", members)
    before = sorted(p.name for p in tmp_path.iterdir())
    audit = audit_wheel(wheel)
    flagged = {v.file for v in audit.violations if v.kind == "corrupt"}
    assert {"../evil.so", "/tmp/abs-evil.txt"} <= flagged
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(work.iterdir()) == []
    assert not Path("/tmp/abs-evil.txt").exists()
    assert audit.sym_tag == "manylinux_2_5_x86_64"  # the rest was still audited


def test_non_elf_so_is_not_native_code(gcc: str, tmp_path: Path) -> None:
    fake = b"this is a text file that happens to end in .so\n"
    only_fake = make_wheel(tmp_path / "a", "manylinux_2_17_x86_64", {"demo/fake.so": fake})
    audit = audit_wheel(only_fake)
    assert audit.pure  # no native code, as auditwheel says ("not a platform wheel")
    assert audit.ok
    assert audit.sym_tag is None
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    mixed = make_wheel(tmp_path / "b", "manylinux_2_17_x86_64", {EXT: so.read_bytes(), "demo/fake.so": fake})
    audit = audit_wheel(mixed)
    assert audit.ok
    assert [f.file for f in audit.files] == [EXT]
    assert_agrees_with_auditwheel(audit, mixed)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b[:40], id="truncated-header"),
        pytest.param(lambda b: b[:4] + b"\x07" + b[5:], id="bad-class"),
        pytest.param(lambda b: b[: len(b) // 3], id="truncated-body"),
        pytest.param(lambda b: b[:0x28] + b"\xff" * 8 + b[0x30:], id="section-table-past-eof"),
    ],
)
def test_elf_with_garbage_headers_is_corrupt(
    gcc: str, tmp_path: Path, mangle: Callable[[bytes], bytes]
) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension()).read_bytes()
    broken = compile_so(gcc, tmp_path / "build2", "other", "int x(void){return 1;}").read_bytes()
    members = {EXT: so, "demo/libbroken.so": mangle(broken)}
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", members)
    audit = audit_wheel(wheel)
    corrupt = [v for v in audit.violations if v.kind == "corrupt"]
    assert [v.file for v in corrupt] == ["demo/libbroken.so"]
    assert "ELF" in corrupt[0].detail
    assert audit.sym_tag == "manylinux_2_5_x86_64"  # the good member still counts


def test_isa_extension_beyond_the_baseline(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension(), "-Wl,-z,x86-64-v3")
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    audit = audit_wheel(wheel)
    assert audit.overall_tag == "linux_x86_64"
    assert any(v.kind == "isa" and "x86_64_v3" in v.detail for v in audit.violations)
    assert_agrees_with_auditwheel(audit, wheel)


def test_machine_code_for_another_arch(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension()).read_bytes()
    arm = so[:18] + (183).to_bytes(2, "little") + so[20:]  # e_machine = EM_AARCH64
    wheel = make_wheel(
        tmp_path, "manylinux_2_17_x86_64", {EXT: so, "demo/_arm.cpython-311-aarch64-linux-gnu.so": arm}
    )
    audit = audit_wheel(wheel)
    (violation,) = audit.violations
    assert violation.kind == "isa"
    assert violation.file == "demo/_arm.cpython-311-aarch64-linux-gnu.so"
    assert "aarch64" in violation.detail
    assert_agrees_with_auditwheel(audit, wheel)


def test_gpu_code_objects_are_skipped_not_flagged(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension()).read_bytes()
    cubin = so[:18] + (190).to_bytes(2, "little") + so[20:]  # e_machine = EM_CUDA
    wheel = make_wheel(tmp_path, "manylinux_2_17_x86_64", {EXT: so, "demo/kernels/k.cubin": cubin})
    audit = audit_wheel(wheel)
    assert audit.ok, audit.violations
    assert dict(audit.skipped_elf) == {"demo/kernels/k.cubin": "EM_CUDA (e_machine 190): code for no CPU"}
    assert_agrees_with_auditwheel(audit, wheel)


def test_native_code_in_a_wheel_tagged_any(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(EXT, so.read_bytes())
    audit = audit_wheel(wheel)
    assert not audit.pure
    assert any(v.kind == "isa" and v.file == wheel.name for v in audit.violations)


def test_pure_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    audit = audit_wheel(wheel)
    assert audit.pure
    assert audit.ok
    assert audit.to_json()["sym_tag"] is None


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


# ------------------------------------------------------------ matrix and CLI


def test_matrix_floor_and_allowed_libraries(gcc: str, tmp_path: Path, real_matrix: Matrix) -> None:
    build = tmp_path / "build"
    nixl = compile_so(gcc, build, "libnixl", "int nixl(void){return 1;}", "-Wl,-soname,libnixl.so")
    other = compile_so(gcc, build, "libother", "int other(void){return 1;}", "-Wl,-soname,libother.so.2")
    del nixl, other
    uses_nixl = compile_so(
        gcc,
        build,
        "ext",
        extension("int nixl(void);\nint g(void){return nixl();}"),
        f"-L{build}",
        "-l:libnixl.so",
    )
    uses_other = compile_so(
        gcc,
        build / "o",
        "ext",
        extension("int other(void);\nint g(void){return other();}"),
        f"-L{build}",
        "-l:libother.so",
    )
    kvbm = make_wheel(tmp_path / "k", "manylinux_2_28_x86_64", {EXT: uses_nixl.read_bytes()}, name="kvbm")
    runtime = make_wheel(
        tmp_path / "r", "manylinux_2_28_x86_64", {EXT: uses_nixl.read_bytes()}, name="ai_dynamo_runtime"
    )
    kvbm_other = make_wheel(
        tmp_path / "o", "manylinux_2_28_x86_64", {EXT: uses_other.read_bytes()}, name="kvbm"
    )
    newer = make_wheel(
        tmp_path / "n", "manylinux_2_34_x86_64", {EXT: uses_other.read_bytes()}, name="ai_dynamo_runtime"
    )
    results = audit_wheels([kvbm, runtime, kvbm_other, newer], matrix=real_matrix)
    by_name = dict(zip(["kvbm", "runtime", "kvbm_other", "newer"], results, strict=True))
    assert by_name["kvbm"].ok, by_name["kvbm"].violations  # libnixl*.so* is allowed for kvbm
    assert by_name["kvbm"].floor == "manylinux_2_28"
    assert kinds(by_name["runtime"]) == {"external-lib"}  # ...but not for the runtime
    assert kinds(by_name["kvbm_other"]) == {"external-lib"}
    assert "policy" in kinds(by_name["newer"])
    # --policy overrides the matrix's floor.
    (relaxed,) = audit_wheels([newer], matrix=real_matrix, policy="manylinux_2_34")
    assert "policy" not in kinds(relaxed)


def test_cli_exit_codes_and_json(gcc: str, tmp_path: Path, cli: Callable[..., Any]) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    good = make_wheel(tmp_path / "good", "manylinux_2_17_x86_64", {EXT: so.read_bytes()})
    result = cli("audit", good, "--format", "json", "--matrix", tmp_path / "none.toml")
    assert result.code == 2  # an explicitly named matrix that does not exist
    matrix = MATRIX_PATH
    result = cli("audit", good, "--format", "json", "--matrix", matrix)
    assert result.code == 0, result.err
    (record,) = json.loads(result.out)
    assert record["wheel"] == good.name
    assert record["ok"] is True
    assert record["sym_tag"] == record["overall_tag"] == "manylinux_2_5_x86_64"
    assert record["violations"] == []
    bad = tmp_path / "good" / "broken-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = cli("audit", tmp_path / "good", "--format", "json", "--matrix", matrix)
    assert result.code == 2  # unreadable input, after reporting every wheel
    records = {r["wheel"]: r for r in json.loads(result.out)}
    assert records[good.name]["ok"] is True
    assert records[bad.name]["violations"][0]["kind"] == "corrupt"
    assert records[bad.name]["unreadable"] is True
    bad.unlink()
    so = compile_so(
        gcc,
        tmp_path / "build",
        "ext",
        extension("#include <math.h>\ndouble f(double x){return log2(x);}"),
        "-lm",
    )
    make_wheel(tmp_path / "good", "manylinux_2_17_x86_64", {EXT: so.read_bytes()}, name="under")
    result = cli("audit", tmp_path / "good", "--format", "json", "--matrix", matrix)
    assert result.code == 1  # a violation
    assert [r["ok"] for r in json.loads(result.out)] == [True, False]
    result = cli("audit", good, "--matrix", matrix)  # the table
    assert result.code == 0
    assert "1 wheels audited, 0 with violations" in result.out
    assert cli("audit", tmp_path / "missing.whl", "--matrix", matrix).code == 2
    assert cli("audit", good, "--policy", "manylinux_9", "--matrix", matrix).code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("audit", empty, "--matrix", matrix).code == 2


# ------------------------------------------------------------ real wheels


REAL_WHEELS = [
    # (requirement, platform): small published wheels of different shapes
    ("markupsafe==3.0.2", "manylinux2014_x86_64"),  # one small extension
    ("pyyaml==6.0.2", "manylinux2014_x86_64"),
    ("pyzmq==26.2.0", "manylinux2014_x86_64"),  # bundles libzmq and libsodium in pyzmq.libs/
    ("msgpack==1.1.0", "musllinux_1_2_x86_64"),  # musl policies
    ("markupsafe==3.0.2", "manylinux2014_aarch64"),  # another architecture
    ("ninja==1.13.0", "manylinux2014_x86_64"),  # an executable (PT_INTERP), not an extension
]


@pytest.mark.network
def test_real_wheels_agree_with_auditwheel(tmp_path: Path) -> None:
    for requirement, platform in REAL_WHEELS:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
                "--dest", str(tmp_path / platform), requirement,
            ],
            check=True,
        )  # fmt: skip
    wheels = sorted(tmp_path.glob("*/*.whl"))
    assert len(wheels) == len(REAL_WHEELS)
    for audit, wheel in zip(audit_wheels(wheels), wheels, strict=True):
        assert not audit.pure
        assert_agrees_with_auditwheel(audit, wheel)
        assert audit.ok, (wheel.name, audit.violations)
        assert (audit.glibc is not None) == ("manylinux" in wheel.name)


# ------------------------------------------------------------ robustness


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
