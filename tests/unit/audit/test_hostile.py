"""The audit attacked: hostile and odd wheels get the right verdict, naming the member.

Where auditwheel has a verdict on the same wheel, the test checks ours against
``auditwheel show --ldpaths ""``; ELF files are crafted from a real gcc build
with pyelftools locating the structures to damage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

from buildmatrix.audit import audit_wheel
from tests.support.elffactory import (
    EXT,
    LOG2,
    assert_agrees_with_auditwheel,
    compile_so,
    extension,
    kinds,
    make_wheel,
)


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


def test_json_lists_libc_and_notes(gcc: str, tmp_path: Path) -> None:
    so = compile_so(gcc, tmp_path / "build", "ext", extension())
    wheel = make_wheel(tmp_path, "linux_x86_64", {EXT: so.read_bytes()})
    record = json.loads(json.dumps(audit_wheel(wheel).to_json()))
    assert record["libc"] == "glibc"
    assert record["notes"]
