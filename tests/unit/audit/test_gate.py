"""The glibc tag audit on wheels built here with gcc, and on real wheels from PyPI.

Every verdict that auditwheel also gives is checked against
``auditwheel show --ldpaths "" --json`` on the same wheel, so these tests
prove agreement rather than restate our own answers.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from buildmatrix.audit import audit_wheel, audit_wheels
from buildmatrix.audit import gate as audit_module
from buildmatrix.errors import UsageError
from buildmatrix.model import Matrix
from tests.support.elffactory import (
    EXT,
    assert_agrees_with_auditwheel,
    compile_so,
    extension,
    kinds,
    make_wheel,
)


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
