"""Native code for the audit tests: extensions compiled with the real gcc, wheels around them,
and auditwheel's own verdict to compare with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from buildmatrix.audit import WheelAudit

EXT = "demo/_ext.cpython-311-x86_64-linux-gnu.so"  # the module is `_ext`: PyInit__ext


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


LOG2 = "#include <math.h>\ndouble f(double x){return log2(x);}"  # log2@GLIBC_2.29
