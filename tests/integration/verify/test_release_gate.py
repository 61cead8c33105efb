"""The release gate on real builds (issue #10): the repository check builds the meta package, a
poisoned manifest stops the run and verify, concurrent runs take turns, partial, stale and
withdrawn releases fail. The bundled examples are built for real with the local backend and
``buildmatrix`` runs as separate processes.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildmatrix.loader import load_matrix
from buildmatrix.wheels.outputs import LOCK
from tests.support.verifying import EXACT_0_7_1, REPO, buildmatrix, of, run
from tests.support.wheelbuilds import _poison


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
