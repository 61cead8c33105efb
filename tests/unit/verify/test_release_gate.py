"""The release gate cannot be fooled (issue #10): no vacuous pass, exact pins, a
release record that is complete and current, a safe output folder, no leaked
credentials, bounded reads.

Wheels, manifests and scratch repositories are made by the tests; the slow
tests build the bundled examples for real with the local backend and run
``buildmatrix`` as separate processes.
"""

from __future__ import annotations

import base64
import fcntl
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from packaging.requirements import Requirement

from buildmatrix import _call
from buildmatrix.errors import CommandFailedError, UsageError
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from buildmatrix.redact import has_credentials, redact, redact_url
from buildmatrix.verify import Report, VerifyOptions, verify
from buildmatrix.verify.pins import group_by_extra
from buildmatrix.wheels.outputs import LOCK, OutputFolder
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT

# What the matrix generates for the meta package of v0.7.1 (examples/ai-dynamo).
EXACT_0_7_1 = [
    "ai-dynamo-runtime==0.7.1",
    'vllm[flashinfer]==0.11.0; extra == "vllm"',
    'nixl[cu12]<=0.7.1; extra == "vllm"',
    'sglang==0.5.3.post4; extra == "sglang"',
    'nixl[cu12]<=0.7.1; extra == "sglang"',
    'tensorrt-llm==1.2.0rc3; extra == "trtllm"',
]
EXTRAS = ("vllm", "sglang", "trtllm")


def meta_wheel(
    folder: Path,
    version: str = "0.7.1",
    requires: Sequence[str] = EXACT_0_7_1,
    extras: Sequence[str] = EXTRAS,
    *,
    name: str = "ai-dynamo",
) -> Path:
    """A meta wheel whose METADATA says exactly ``requires`` and ``extras``."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    metadata += "".join(f"Provides-Extra: {e}\n" for e in extras)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{dist}/__init__.py", "")
        archive.writestr(f"{dist}-{version}.dist-info/METADATA", metadata)
        archive.writestr(f"{dist}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        archive.writestr(f"{dist}-{version}.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """The matrix with a meta package whose pyproject states main's extras statically
    (the repository checks stay fast; building it is tested on its own)."""
    from buildmatrix import docs

    root = tmp_path_factory.mktemp("repo")
    shutil.copy(REPO / "matrix.toml", root / "matrix.toml")
    shutil.copytree(REPO / "containers", root / "containers")
    package = root / "examples" / "ai-dynamo"
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        '[project]\nname = "ai-dynamo"\nversion = "0.8.0.dev0"\n'
        'dependencies = ["ai-dynamo-runtime==0.8.0.dev0"]\n'
        "[project.optional-dependencies]\n"
        'vllm = ["vllm[flashinfer]==0.12.0", "nixl[cu12]<=0.8.0"]\n'
        'sglang = ["sglang==0.5.6", "nixl[cu12]<=0.8.0"]\n'
        'trtllm = ["tensorrt-llm==1.2.0rc5"]\n'
    )
    matrix = load_matrix(root / "matrix.toml")
    (root / "docs").mkdir()
    (root / "docs" / "support-matrix.md").write_text(docs.render(matrix))
    return matrix


def run(matrix: Matrix, **options: Any) -> Report:
    return verify(matrix, VerifyOptions(**options))


def of(report: Report, subject: Path | str) -> list[Any]:
    return [c for c in report.checks if c.subject == str(subject)]


# --------------------------------------------------------------------------- no vacuous pass


def test_the_repository_alone_verifies_clean(scratch: Matrix) -> None:
    report = run(scratch)
    assert report.exit_code == 0, [c for c in report.checks if not c.ok]
    assert report.checks


def test_empty_folder_and_a_folder_named_like_a_wheel_fail(tmp_path: Path, scratch: Matrix) -> None:
    empty = tmp_path / "dist"
    empty.mkdir()
    disguised = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    disguised.mkdir()
    for folder in (empty, disguised):
        report = run(scratch, wheels=(folder,))
        [check] = of(report, folder)
        assert (check.ok, check.found) == (False, "no wheel files")
        assert report.exit_code == 1


def test_missing_path_and_non_wheels_fail_naming_them(tmp_path: Path, scratch: Matrix) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a wheel")
    report = run(scratch, wheels=(text,))
    [check] = of(report, text)
    assert not check.ok
    assert check.detail.startswith("not a wheel")
    # A zip named like a wheel but without METADATA: unreadable input, exit 2, named.
    fake = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("ai_dynamo/__init__.py", "")
    report = run(scratch, wheels=(fake,))
    assert report.exit_code == 2
    assert any(str(fake) in e and "METADATA" in e for e in report.errors)
    report = run(scratch, wheels=(tmp_path / "nowhere",))
    assert report.exit_code == 2
    assert report.errors == (f"--wheel {tmp_path / 'nowhere'}: no such file or folder",)


def test_wheel_of_another_release_fails_naming_its_release(tmp_path: Path, scratch: Matrix) -> None:
    wheel = meta_wheel(tmp_path)
    report = run(scratch, wheels=(wheel,), releases=(scratch.find_release("main"),))
    [check] = of(report, wheel)
    assert not check.ok
    assert check.detail == "the wheel belongs to release v0.7.1, not to the selected main"
    assert report.exit_code == 1


def test_cli_counts_artifacts_and_checks(tmp_path: Path, scratch: Matrix, cli: Callable[..., Any]) -> None:
    wheel = meta_wheel(tmp_path / "dist")
    result = cli("verify", "--matrix", scratch.path, "--wheel", wheel.parent, "--format", "json")
    summary = json.loads(result.out)["summary"]
    assert result.code == 0, result.out
    assert summary["artifacts"] == 1
    assert summary["checks"] == len(json.loads(result.out)["checks"]) > 0
    result = cli("verify", "--matrix", scratch.path, "--wheel", wheel.parent)
    assert result.code == 0
    assert "all checks hold (" in result.out
    assert ", 1 artifacts)" in result.out
    (tmp_path / "empty").mkdir()
    result = cli("verify", "--matrix", scratch.path, "--wheel", tmp_path / "empty")
    assert result.code == 1
    assert "no wheel files" in result.out


# --------------------------------------------------------------------------- exact pins


def test_exact_meta_wheel_passes_with_every_requirement_checked(tmp_path: Path, scratch: Matrix) -> None:
    wheel = meta_wheel(tmp_path)
    report = run(scratch, wheels=(wheel,))
    checks = of(report, wheel)
    assert len(checks) == 1 + len(EXACT_0_7_1)  # the version, then each requirement
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize(
    ("nixl", "problem"),
    [
        ("nixl[cu12]", "specifier (any) differs from <=0.7.1 (admits the pin 0.7.1)"),
        ("nixl[cu12]>=0.1", "specifier >=0.1 differs from <=0.7.1 (admits the pin 0.7.1)"),
        ("nixl[cu12]<=0.9.0", "specifier <=0.9.0 differs from <=0.7.1 (admits the pin 0.7.1)"),
        ("nixl[cu12]<=0.6.0", "specifier <=0.6.0 differs from <=0.7.1 (does not admit the pin 0.7.1)"),
        ("nixl<=0.7.1", "extras [] differ from [cu12]"),
        ("nixl[cu12,cu13]<=0.7.1", "extras [cu12,cu13] differ from [cu12]"),
        ('nixl[cu12]<=0.7.1; python_version >= "3.11" and', 'marker python_version >= "3.11" differs'),
    ],
)
def test_loose_nixl_specifiers_fail(tmp_path: Path, scratch: Matrix, nixl: str, problem: str) -> None:
    marker = 'extra == "vllm"'
    line = f"{nixl} {marker}" if nixl.endswith(" and") else f"{nixl}; {marker}"
    requires = [line if r == f"nixl[cu12]<=0.7.1; {marker}" else r for r in EXACT_0_7_1]
    wheel = meta_wheel(tmp_path, requires=requires)
    report = run(scratch, wheels=(wheel,))
    failed = [c for c in of(report, wheel) if not c.ok]
    assert [(c.name, c.detail.split(":")[0]) for c in failed] == [("nixl", "extra 'vllm'")]
    assert problem in failed[0].detail
    assert report.exit_code == 1


def test_unexpected_missing_and_duplicate_requirements_fail(tmp_path: Path, scratch: Matrix) -> None:
    requires = [
        *(r for r in EXACT_0_7_1 if not r.startswith("sglang")),  # sglang missing from its extra
        'uvloop; extra == "vllm"',  # not generated
        'vllm[flashinfer]==0.11.0; extra == "vllm"',  # required twice
        "requests",  # a base requirement the matrix does not pin: noted, not the matrix's to say
        "vllm==0.12.0",  # a pinned distribution in the base requirements bypasses the extra
        'torch; extra == "extra-thing"',  # an extra the matrix does not generate
    ]
    wheel = meta_wheel(tmp_path, requires=requires, extras=(*EXTRAS, "extra-thing"))
    report = run(scratch, wheels=(wheel,))
    assert report.notes == (f"{wheel}: base requirements the matrix does not pin, not checked: requests",)
    failed = {(c.name, c.found, c.detail) for c in of(report, wheel) if not c.ok}
    assert failed == {
        ("sglang", "(not required)", "extra 'sglang' does not require sglang (v0.7.1)"),
        (
            "uvloop",
            "uvloop",
            "extra 'vllm': unexpected requirement, the matrix generates none on uvloop (v0.7.1)",
        ),
        (
            "vllm",
            "vllm[flashinfer]==0.11.0; vllm[flashinfer]==0.11.0",
            "extra 'vllm': required 2 times (v0.7.1)",
        ),
        (
            "vllm",
            "vllm==0.12.0",
            "base requirements: unexpected requirement, the matrix generates none on vllm (v0.7.1)",
        ),
        (
            "torch",
            "torch",
            "extra 'extra-thing': unexpected requirement, the matrix generates none on torch (v0.7.1)",
        ),
        (
            "extra-thing",
            "Provides-Extra: extra-thing",
            "the matrix generates no extra 'extra-thing' (v0.7.1)",
        ),
    }


def test_extras_are_grouped_by_marker_structure() -> None:
    requires = [
        Requirement("a; extra == 'vllm'"),
        Requirement("b; (python_version >= '3.10') and extra == 'vllm'"),  # hatchling's form
        Requirement("c; 'vllm' == extra"),
        Requirement("d; python_version < '3.13'"),
        Requirement("e; extra == 'vllm' or extra == 'sglang'"),  # not attributable to one extra
    ]
    grouped, unclear = group_by_extra(requires)
    assert {k: [(r.name, m) for r, m in v] for k, v in grouped.items()} == {
        None: [("d", 'python_version < "3.13"')],
        "vllm": [("a", ""), ("b", 'python_version >= "3.10"'), ("c", "")],
    }
    assert [r.name for r in unclear] == ["e"]


def test_requirement_without_a_clear_extra_fails(tmp_path: Path, scratch: Matrix) -> None:
    requires = [*EXACT_0_7_1, 'uvloop; extra == "vllm" or extra == "sglang"']
    wheel = meta_wheel(tmp_path, requires=requires)
    failed = [c for c in of(run(scratch, wheels=(wheel,)), wheel) if not c.ok]
    assert [(c.name, c.detail) for c in failed] == [
        ("uvloop", "cannot tell which extra requires this (v0.7.1)")
    ]


@pytest.mark.slow
def test_repository_check_builds_the_meta_package(tmp_path: Path) -> None:
    """Extras generated at build time are checked in the wheel the build makes."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "matrix.toml", root / "matrix.toml")
    shutil.copytree(REPO / "containers", root / "containers")
    shutil.copytree(REPO / "examples", root / "examples")
    matrix = load_matrix(root / "matrix.toml")
    report = run(matrix, releases=(matrix.find_release("v0.7.1"),))
    subject = f"{root / 'examples' / 'ai-dynamo'} (as built for v0.7.1)"
    built = of(report, subject)
    assert len(built) == 1 + len(EXACT_0_7_1)
    assert all(c.ok for c in built), [c for c in built if not c.ok]
    # A build script that loosens the NIXL pin is caught in what it builds.
    setup = root / "examples" / "ai-dynamo" / "setup.py"
    setup.write_text(
        setup.read_text().replace(
            'extras_require=info["optional_dependencies"]',
            'extras_require={k: [r.replace("<=", ">=") for r in v] '
            'for k, v in info["optional_dependencies"].items()}',
        )
    )
    report = run(matrix, releases=(matrix.find_release("v0.7.1"),))
    failed = [c for c in of(report, subject) if not c.ok]
    assert sorted(c.detail.split(":")[0] for c in failed) == ["extra 'sglang'", "extra 'vllm'"]
    assert all(c.name == "nixl" and "specifier >=0.7.1 differs" in c.detail for c in failed)


# --------------------------------------------------------------------------- bounded reads


def test_metadata_bomb_is_refused_with_a_message(tmp_path: Path, scratch: Matrix) -> None:
    wheel = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    zeros = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("ai_dynamo-0.7.1.dist-info/METADATA", "w") as member,
    ):
        for _ in range(256):  # 256 MiB inflated, a few hundred kB on disk
            member.write(zeros)
    assert wheel.stat().st_size < 2 << 20
    report = run(scratch, wheels=(wheel,))
    assert report.exit_code == 2
    [error] = [e for e in report.errors if str(wheel) in e]
    assert "METADATA inflates to more than 16777216 bytes" in error


# --------------------------------------------------------------------------- output folder


def _poison(out: Path, filename: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    entry = {"target": "wheel:ai-dynamo:main:py3:x86_64", "filename": filename, "input_hash": "x"}
    (out / "manifest.json").write_text(json.dumps({"schema": 1, "wheels": [entry]}))


@pytest.mark.parametrize("filename", ["../victim.whl", "ABSOLUTE", "sub/../../victim.whl", "link.whl", ""])
def test_poisoned_manifest_is_refused(tmp_path: Path, filename: str) -> None:
    victim = tmp_path / "victim.whl"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    if filename == "link.whl":
        (out / "link.whl").symlink_to(victim)
    _poison(out, str(victim) if filename == "ABSOLUTE" else filename)
    folder = OutputFolder(out)
    with pytest.raises(UsageError, match=r"manifest.json: entry 'wheel:ai-dynamo:main:py3:x86_64'"):
        folder.entries  # noqa: B018 - reading is what is refused


@pytest.mark.parametrize("name", [LOCK, "manifest.json", "logs", "rejected"])
def test_links_in_the_output_folder_are_refused(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(outside if name in ("logs", "rejected") else outside / "file")
    with pytest.raises(UsageError, match=f"{name} is a symbolic link"), OutputFolder(out).locked():
        pass
    assert list(outside.iterdir()) == []


@pytest.mark.slow
def test_poisoned_manifest_stops_the_run_and_verify(tmp_path: Path) -> None:
    victim = tmp_path / "victim.whl"
    victim.write_text("precious")
    out = tmp_path / "out"
    _poison(out, "../victim.whl")
    result = buildmatrix("wheels", "--package", "ai-dynamo", "--out", out, "--backend", "local")
    assert result.returncode == 2, result.stderr
    assert "not a plain wheel file name" in result.stderr
    result = buildmatrix("wheels", "--package", "ai-dynamo", "--out", out, "--backend", "local", "--force")
    assert result.returncode == 2, result.stderr
    assert victim.read_text() == "precious"
    assert list(out.glob("*.whl")) == []
    result = buildmatrix("verify", "--release", "main", "--wheel", out, "--format", "json")
    assert result.returncode == 1
    failed = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert any("not a plain wheel file name" in c["found"] for c in failed)


def buildmatrix(
    *args: str | os.PathLike[str], matrix: Path = REPO / "matrix.toml"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildmatrix", args[0], "--matrix", str(matrix), *map(str, args[1:])],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_concurrent_runs_take_turns_and_keep_every_entry(tmp_path: Path) -> None:
    """Two real processes on one folder while a third holds the lock: both wait,
    then both publish; the manifest has both entries."""
    out = tmp_path / "out"
    out.mkdir()
    lock = (out / LOCK).open("a+")
    fcntl.flock(lock, fcntl.LOCK_EX)
    processes = [
        subprocess.Popen(
            [
                sys.executable, "-m", "buildmatrix", "wheels", "--matrix", str(REPO / "matrix.toml"),
                "--release", release, "--package", "ai-dynamo", "--out", str(out), "--backend", "local",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for release in ("main", "v0.7.1")
    ]  # fmt: skip
    try:
        time.sleep(3)  # both are started and blocked on the lock
        assert all(p.poll() is None for p in processes)
        assert list(out.glob("*.whl")) == []
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert all("waiting for the run holding" in err for _, err in outputs)
    entries = json.loads((out / "manifest.json").read_text())["wheels"]
    assert sorted(e["target"] for e in entries) == [
        "wheel:ai-dynamo:main:py3:x86_64",
        "wheel:ai-dynamo:v0.7.1:py3:x86_64",
    ]
    assert sorted(p.name for p in out.glob("*.whl")) == sorted(e["filename"] for e in entries)


# --------------------------------------------------------------------------- release record


def _project(tmp_path: Path, *, runtime_archs: str) -> Path:
    """matrix.toml (without kvbm, whose Python 3.12 the host may lack) and the examples."""
    from buildmatrix import docs

    tmp_path.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "project"
    root.mkdir()
    text = (REPO / "matrix.toml").read_text()
    start = text.index("[wheel.kvbm]")
    end = text.find("\n[", start + 1)
    text = text[:start] + (text[end + 1 :] if end != -1 else "")
    head, *rules = text.split("\n[[rule]]")
    text = head + "".join("\n[[rule]]" + rule for rule in rules if "kvbm" not in rule)
    runtime = text.index("[wheel.ai-dynamo-runtime]")
    arch_line = text.index("\narch = ", runtime)
    line_end = text.index("\n", arch_line + 1)
    text = text[:arch_line] + f"\narch = {runtime_archs}" + text[line_end:]
    (root / "matrix.toml").write_text(text)
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copytree(REPO / "containers", root / "containers")
    (root / "docs").mkdir()
    (root / "docs" / "support-matrix.md").write_text(docs.render(load_matrix(root / "matrix.toml")))
    return root / "matrix.toml"


@pytest.mark.slow
def test_partial_stale_and_withdrawn_releases_fail(tmp_path: Path) -> None:
    from buildmatrix.wheels.host import Host

    if Host().arch != "x86_64":
        pytest.skip("the scratch matrix builds x86_64 wheels")  # CI runs on x86_64
    matrix = _project(tmp_path, runtime_archs='["x86_64", "aarch64"]')
    out = tmp_path / "wheelhouse"
    wheels = ("wheels", "--release", "v0.7.1", "--out", out, "--backend", "local")
    verify_cmd = ("verify", "--release", "v0.7.1", "--wheel", out, "--format", "json")

    # Partial: the aarch64 runtime cannot be built here.
    result = buildmatrix(*wheels, "--require-all", matrix=matrix)
    assert result.returncode == 1, result.stderr
    assert (
        "--require-all: wheel:ai-dynamo-runtime:v0.7.1:cp310-abi3:aarch64 is not buildable here"
        in result.stderr
    )
    record = json.loads((out / "manifest.json").read_text())["run"]
    assert record["status"] == "incomplete"
    assert record["releases"] == ["v0.7.1"]
    assert len(record["matrix"]["sha256"]) == 64
    statuses = {row["target"]: row["status"] for row in record["targets"]}
    assert statuses == {
        "wheel:ai-dynamo:v0.7.1:py3:x86_64": "built",
        "wheel:ai-dynamo-runtime:v0.7.1:cp310-abi3:x86_64": "built",
        "wheel:ai-dynamo-runtime:v0.7.1:cp310-abi3:aarch64": "not buildable here",
    }
    result = buildmatrix(*verify_cmd, matrix=matrix)
    assert result.returncode == 1
    record_checks = [c for c in json.loads(result.stdout)["checks"] if c["subject"].endswith("manifest.json")]
    assert [(c["name"], c["found"]) for c in record_checks if not c["ok"]] == [
        ("wheel:ai-dynamo-runtime:v0.7.1:cp310-abi3:aarch64", "(missing)")
    ]
    assert "last run: not buildable here" in next(c for c in record_checks if not c["ok"])["detail"]

    # Complete and current: the matrix builds x86_64 only; nothing is rebuilt.
    matrix = _project(tmp_path / "x86", runtime_archs='["x86_64"]')
    result = buildmatrix(*wheels, "--require-all", matrix=matrix)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["run"]["status"] == "complete"
    result = buildmatrix(*verify_cmd, matrix=matrix)
    assert result.returncode == 0, result.stdout
    # Another release's wheels in the same wheelhouse are left to that release's check.
    other = ("wheels", "--release", "main", "--package", "ai-dynamo", "--out", out, "--backend", "local")
    assert buildmatrix(*other, matrix=matrix).returncode == 0
    # ... but a wheel nobody recorded is of unknown provenance.
    stray = out / "ai_dynamo-0.7.1-py2.py3-none-any.whl"
    shutil.copy(out / "ai_dynamo-0.7.1-py3-none-any.whl", stray)
    result = buildmatrix(*verify_cmd, matrix=matrix)
    assert result.returncode == 1
    assert json.loads(result.stdout)["notes"] == [
        f"{out / 'ai_dynamo-0.8.0.dev0-py3-none-any.whl'}: recorded for release main, not selected"
    ]
    [failed] = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert (failed["subject"], failed["found"]) == (str(stray), "not recorded")
    stray.unlink()

    # Stale: the meta package's source changed after the build.
    init = matrix.parent / "examples" / "ai-dynamo" / "src" / "ai_dynamo" / "__init__.py"
    init.write_text(init.read_text() + "\n# changed\n")
    result = buildmatrix(*verify_cmd, matrix=matrix)
    assert result.returncode == 1
    [stale] = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert stale["name"] == "wheel:ai-dynamo:v0.7.1:py3:x86_64"
    assert stale["detail"] == "changed since it was built: source"

    # A failed rebuild withdraws the stale wheel into rejected/withdrawn/ with the reason.
    published = json.loads((out / "manifest.json").read_text())["wheels"]
    [meta] = [e["filename"] for e in published if e["target"] == "wheel:ai-dynamo:v0.7.1:py3:x86_64"]
    setup = matrix.parent / "examples" / "ai-dynamo" / "setup.py"
    working = setup.read_text()
    setup.write_text(working + "\nraise SystemExit('broken on purpose')\n")
    result = buildmatrix(*wheels, matrix=matrix)
    assert result.returncode == 1
    assert not (out / meta).exists()
    withdrawn = out / "rejected" / "withdrawn" / meta
    assert withdrawn.is_file()
    reason = json.loads(withdrawn.with_name(meta + ".withdrawn.json").read_text())
    assert reason["reason"].startswith("rebuild failed")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["target"] for e in manifest["wheels"]] == [
        "wheel:ai-dynamo-runtime:v0.7.1:cp310-abi3:x86_64",
        "wheel:ai-dynamo:main:py3:x86_64",
    ]
    assert manifest["run"]["status"] == "failed"
    setup.write_text(working)  # the repository check builds the package too
    result = buildmatrix(*verify_cmd, matrix=matrix)
    assert result.returncode == 1
    [failed] = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert (failed["name"], failed["found"]) == ("wheel:ai-dynamo:v0.7.1:py3:x86_64", "(missing)")
    assert failed["detail"].startswith("last run: failed")


# --------------------------------------------------------------------------- credentials

PASSWORD = "pa55-PLANTED-w0rd"
TOKEN = "tok-PLANTED-123"


def test_redaction_helper() -> None:
    assert redact_url(f"https://user:{PASSWORD}@host/simple") == "https://***@host/simple"
    assert redact_url(f"https://host/simple?x=1&token={TOKEN}") == "https://host/simple?x=1&token=***"
    assert redact_url("https://host/simple/") == "https://host/simple/"
    assert has_credentials(f"https://{TOKEN}@host/")
    assert not has_credentials("https://host/?page=2")
    text = f"pip install --index-url https://u:{PASSWORD}@h/simple x && curl 'https://h/?api_key={TOKEN}'"
    assert PASSWORD not in redact(text)
    assert TOKEN not in redact(text)


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    authorizations: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.authorizations.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_index() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_planted_credentials_never_leave(tmp_path: Path, refusing_index: str) -> None:
    """Every output of every path an index URL takes: stdout, stderr, JSON, bake file, logs."""
    secret_url = f"http://user:{PASSWORD}@{refusing_index}/simple/?token={TOKEN}"
    outputs: list[str] = []
    for fmt in ("json", "table"):
        result = buildmatrix(
            "verify", "--release", "main", "--check-index", "--index-url", secret_url, "--format", fmt
        )
        assert result.returncode == 2, result.stderr
        outputs += [result.stdout, result.stderr]
    assert "HTTP 401" in outputs[0] + outputs[1]
    # The user info was sent as HTTP basic auth, as pip sends it.
    assert "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode() in _Unauthorized.authorizations
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "buildmatrix",
            "verify",
            "--release",
            "main",
            "--check-index",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_INDEX_URL": secret_url},
    )
    assert result.returncode == 2
    outputs += [result.stdout, result.stderr]
    images_out = tmp_path / "images"
    for url in (f"https://user:{PASSWORD}@pypi.example/simple", f"https://pypi.example/simple?token={TOKEN}"):
        args = ("images", "vllm", "--dry-run", "--engine", "buildx", "--out", images_out, "--index-url", url)
        result = buildmatrix(*args)
        assert result.returncode == 2
        assert "carries credentials" in result.stderr
        outputs += [result.stdout, result.stderr]
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine pypi.example login user password {PASSWORD}\n")
    args = ("images", "vllm", "--dry-run", "--engine", "buildx", "--out", images_out, "--format", "json")
    result = buildmatrix(
        *args, "--index-url", "https://pypi.example/simple", "--secret", f"id=netrc,src={netrc}"
    )
    assert result.returncode == 0, result.stderr
    bake = images_out / "docker-bake.json"
    assert f"id=netrc,src={netrc}" in bake.read_text()  # the secret is passed as a secret
    outputs += [result.stdout, result.stderr, bake.read_text()]
    # A failing command with a credential in its arguments: its echo in the log, the message.
    log_path = tmp_path / "command.log"
    with log_path.open("w") as log, pytest.raises(CommandFailedError) as failure:
        _call.call(sys.executable, "-c", "raise SystemExit(3)", secret_url, log=log, echo=False)
    outputs += [failure.value.message, log_path.read_text()]
    assert "***" in failure.value.message
    for text in outputs:
        assert PASSWORD not in text
        assert TOKEN not in text


def test_matrix_urls_with_credentials_are_refused(tmp_path: Path) -> None:
    """The matrix's URLs go into labels and the docs page: credentials are bad input."""
    from buildmatrix.errors import MatrixError

    text = (REPO / "matrix.toml").read_text()
    plain = 'source = "https://github.com/ai-dynamo/dynamo"'
    assert plain in text
    (tmp_path / "matrix.toml").write_text(
        text.replace(plain, f'source = "https://user:{PASSWORD}@github.com/ai-dynamo/dynamo"')
    )
    with pytest.raises(MatrixError) as error:
        load_matrix(tmp_path / "matrix.toml")
    assert "carries credentials" in error.value.message
    assert "https://***@github.com/ai-dynamo/dynamo" in error.value.message
    assert PASSWORD not in error.value.message


class _HugePage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>" + b"x" * 4096 + b"</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_index_pages_are_read_through_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from buildmatrix.verify import index

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HugePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(index, "MAX_PAGE_BYTES", 1024)
        client = index.SimpleIndexClient(
            index.IndexConfig(index_url=f"http://127.0.0.1:{server.server_address[1]}/")
        )
        with pytest.raises(
            index.IndexUnavailableError, match="is larger than 1024 bytes; refusing to read it"
        ):
            client.project("vllm")
    finally:
        server.shutdown()
