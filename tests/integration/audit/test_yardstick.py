"""auditwheel's own test suite as the yardstick for the audit.

auditwheel's source distribution on PyPI (the version installed here) carries
its test wheels (``tests/bundled-wheels``: every architecture, musl, Android,
PyPy, Python 2 UCS2, PyFPE, pure) and the packages its integration tests build
in manylinux containers (``tests/integration``). These tests download that
sdist, build the packages here with gcc (``pip wheel``, no container), repair
them with ``auditwheel repair`` as its integration tests do, and assert that
our verdict equals ``auditwheel show --ldpaths ""`` on every wheel, and that
our own violations beyond auditwheel's are exactly the differences the README
documents (Audit > Differences from auditwheel).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from buildmatrix.audit import WheelAudit, audit_wheels

pytestmark = pytest.mark.network

AUDITWHEEL = importlib.metadata.version("auditwheel")
HOST_IS_X86_64 = os.uname().machine == "x86_64"

# Our violations on auditwheel's bundled wheels, by wheel: what auditwheel
# reports as well (a tag it does not meet, an external library), plus the
# documented differences (marked).
BUNDLED_KINDS: dict[str, set[str]] = {
    "spam-0.1.0-cp313-cp313-android_24_arm64_v8a.whl": {"external-lib"},  # libc++_shared.so
    "cffi-1.5.0-cp27-none-linux_x86_64.whl": {"rpath"},  # difference: RPATH /opt/2.7.11/lib
    # needs GLIBC_2.29 under a 2_17 tag, and links libpython3.13 (auditwheel lists it too)
    "python_mscl-67.0.1.0-cp313-cp313-manylinux2014_aarch64.whl": {"glibc-underclaim", "external-lib"},
    "testsimple-0.0.1-cp313-cp313-linux_armv5l.whl": {"isa"},  # difference: soft-float ARM
    "testsimple-0.0.1-cp313-cp313-linux_mips64.whl": {"isa"},  # difference: a CPU with no policy
    "testsimple-0.0.1-cp310-cp310-linux_x86_64.whl": {"libc"},  # auditwheel: InvalidLibcError
}

# The packages auditwheel's integration tests build: (folder, environment, needs).
INTEGRATION_CASES: list[tuple[str, dict[str, str], str]] = [
    ("testsimple", {}, ""),
    ("testdependencies", {}, ""),
    ("testdependencies", {"WITH_DEPENDENCY": "1"}, ""),
    ("testdependencies", {"WITH_DEPENDENCY": "1", "WITH_ARCH": "x86-64-v3"}, "x86_64"),
    ("testrpath", {"DTAG": "rpath"}, ""),
    ("testrpath", {"DTAG": "runpath"}, ""),
    ("testrpath", {"DTAG": "none"}, ""),
    ("testpartialresolution", {}, ""),
    ("testpackage", {}, "gsl"),
    ("nonpy_rpath", {}, ""),
    ("test_glibcxx_3_4_25", {}, ""),
]


def auditwheel_show(wheel: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", "--ldpaths", "", "--json", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    result["stderr"] = done.stderr
    return result


def compare(audit: WheelAudit, reference: dict[str, Any]) -> None:
    """Our verdict against auditwheel's, whatever auditwheel said."""
    name = audit.wheel
    if "sym_tag" in reference:
        ours = (audit.sym_tag, audit.overall_tag, list(audit.external_libs))
        theirs = (reference["sym_tag"], reference["overall_tag"], sorted(reference["external_libs"]))
        assert ours == theirs, name
        versions = {lib: list(v) for lib, v in audit.versioned_symbols}
        assert versions == reference["versioned_symbols"], name
    elif "does not look like a platform wheel" in reference.get("error", ""):
        assert audit.pure, name
    elif "couldn't detect libc" in reference["stderr"]:
        assert "libc" in {v.kind for v in audit.violations}, name
    else:
        pytest.fail(f"auditwheel gave no verdict on {name}: {reference['stderr'][-500:]}")


@pytest.fixture(scope="module")
def auditwheel_tests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """auditwheel's ``tests`` folder, from its sdist on PyPI (never committed here)."""
    folder = tmp_path_factory.mktemp("auditwheel-sdist")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:",
         "--dest", str(folder), f"auditwheel=={AUDITWHEEL}"],
        check=True,
    )  # fmt: skip
    (sdist,) = folder.glob("auditwheel-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(folder, filter="data")  # refuses ../ and absolute names
    return folder / f"auditwheel-{AUDITWHEEL}" / "tests"


def test_bundled_wheels_agree_with_auditwheel(auditwheel_tests: Path) -> None:
    wheels = sorted((auditwheel_tests / "bundled-wheels").rglob("*.whl"))
    assert len(wheels) >= 20
    audits = audit_wheels(wheels)
    for audit, wheel in zip(audits, wheels, strict=True):
        compare(audit, auditwheel_show(wheel))
        expected = BUNDLED_KINDS.get(wheel.name, set())
        assert {v.kind for v in audit.violations} == expected, (wheel, audit.violations)
        if audit.platform_tags and audit.platform_tags[0].startswith("linux_") and not audit.pure:
            assert any("promises nothing" in note for note in audit.notes), wheel


def _build(case: Path, env: dict[str, str], out: Path) -> Path:
    work = out / "src"
    shutil.copytree(case, work)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(out), "."],
        cwd=work,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


def _repair(wheel: Path, out: Path) -> Path | None:
    """``auditwheel repair`` as its integration tests run it; None when it refuses."""
    done = subprocess.run(
        [sys.executable, "-m", "auditwheel", "repair", "--only-plat", "--plat",
         f"manylinux_2_28_{os.uname().machine}", "-w", str(out), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    repaired = list(out.glob("*.whl"))
    return repaired[0] if done.returncode == 0 and repaired else None


@pytest.mark.slow
@pytest.mark.parametrize(("folder", "env", "needs"), INTEGRATION_CASES)
def test_integration_packages_agree_with_auditwheel(
    auditwheel_tests: Path, tmp_path: Path, folder: str, env: dict[str, str], needs: str
) -> None:
    if needs == "x86_64" and not HOST_IS_X86_64:
        pytest.skip("an x86-64 ISA level")
    if needs == "gsl" and not Path("/usr/include/gsl").is_dir():
        pytest.fail("testpackage links GSL: apt-get install libgsl-dev (.ci/run does)")
    wheel = _build(auditwheel_tests / "integration" / folder, env, tmp_path / "built")
    repaired = _repair(wheel, tmp_path / "repaired")
    for candidate in [wheel, repaired]:
        if candidate is None:
            continue
        (audit,) = audit_wheels([candidate])
        compare(audit, auditwheel_show(candidate))
        own = {v.kind for v in audit.violations} - {"external-lib", "glibc-underclaim", "isa"}
        # Built with this host's Python, an extension carries its lib folder as an
        # absolute run path: our one documented addition on these packages.
        assert own <= {"rpath"}, audit.violations
        assert all(
            v.detail.split(" is ")[0].split()[-1].startswith("/")
            for v in audit.violations
            if v.kind == "rpath"
        )
    if repaired is not None:
        (fixed,) = audit_wheels([repaired])
        assert {v.kind for v in fixed.violations} <= {"rpath"}, fixed.violations
