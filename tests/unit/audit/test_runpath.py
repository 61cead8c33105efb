"""buildmatrix.audit.runpath: repair drops run paths that leave the wheel."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from buildmatrix.audit import audit_wheel, elf
from buildmatrix.audit.runpath import confine_run_paths
from tests.support.elffactory import (
    EXT,
    compile_so,
    extension,
    kinds,
    make_wheel,
)


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
