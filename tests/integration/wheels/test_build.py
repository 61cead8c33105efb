"""The wheels job, real local builds: the bundled examples built for real with the local backend
(host compiler, uv/PyPA build, auditwheel), audited and published; reruns, provenance, failures
and interruptions. (The pure steps are in tests/unit/wheels.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from buildmatrix.expand import TargetKind, expand
from buildmatrix.model import Matrix
from buildmatrix.wheels.host import Host
from buildmatrix.wheels.jobs import Job
from buildmatrix.wheels.local import LocalBackend
from buildmatrix.wheels.outputs import OutputFolder
from tests.support.wheelbuilds import REPO, copy_project, manifest, requires_dist, wheels_in


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The README's command, for real: the bundled examples with the local backend."""
    out = tmp_path_factory.mktemp("wheelhouse")
    result = _wheels("--matrix", REPO / "matrix.toml", "--out", out, "--backend", "local")
    return out, result


def _wheels(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildmatrix", "wheels", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.slow
def test_examples_build_audit_and_publish(built: tuple[Path, Any]) -> None:
    out, result = built
    assert result.returncode == 0, result.stderr
    host = Host().arch
    names = wheels_in(out)
    assert "ai_dynamo-0.8.0.dev0-py3-none-any.whl" in names
    runtime = f"ai_dynamo_runtime-0.8.0.dev0-cp310-abi3-manylinux_2_28_{host}.whl"
    assert runtime in names
    entries = manifest(out)
    entry = entries[f"wheel:ai-dynamo-runtime:main:cp310-abi3:{host}"]
    assert entry["filename"] == runtime
    assert entry["tags"] == [f"cp310-abi3-manylinux_2_28_{host}"]
    assert entry["audit"]["ok"] is True
    assert entry["size"] == (out / runtime).stat().st_size
    import hashlib

    assert entry["sha256"] == hashlib.sha256((out / runtime).read_bytes()).hexdigest()
    assert entry["source"]["path"] == "examples/ai-dynamo-runtime"
    assert {"buildmatrix", "frontend", "auditwheel", "compiler"} <= set(entry["tools"])
    assert (out / "logs" / f"ai-dynamo-runtime-main-cp310-abi3-{host}.log").is_file()
    assert not list(out.glob(".tmp-*"))
    assert "not buildable here" in result.stderr  # the other arch, said clearly


@pytest.mark.slow
def test_native_wheel_works(built: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = built
    wheel = next(out.glob("ai_dynamo_runtime-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path)
    check = (
        "import ai_dynamo_runtime as r\n"
        "from ai_dynamo_runtime import reference\n"
        "assert r.xxh64(b'abc') == 0x44BC2CF5AD770999\n"
        "tokens = list(range(64))\n"
        "assert r.block_hashes(tokens, 16) == reference.block_hashes(tokens, 16)\n"
        "assert r._blockhash.__file__.endswith('.abi3.so')\n"
        "print(r.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "0.8.0.dev0"  # the release's version, from its dist-info
    # The package's own test suite (what cibuildwheel runs in CI) against the built wheel.
    suite = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(REPO / "examples" / "ai-dynamo-runtime" / "tests"),
        ],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert " passed" in suite.stdout


@pytest.mark.slow
def test_meta_wheel_requires_the_matrix_pins(built: tuple[Path, Any], real_matrix: Matrix) -> None:
    out, _ = built
    requirements = requires_dist(out / "ai_dynamo-0.8.0.dev0-py3-none-any.whl")
    by_extra: dict[str, dict[str, str]] = {}
    for requirement in requirements:
        extra = ""
        for name in ("vllm", "sglang", "trtllm"):
            if requirement.marker is not None and requirement.marker.evaluate({"extra": name}):
                extra = name
        by_extra.setdefault(extra, {})[requirement.name] = str(requirement.specifier)
    assert by_extra[""] == {"ai-dynamo-runtime": "==0.8.0.dev0"}
    assert by_extra["vllm"] == {"vllm": "==0.12.0", "nixl": "<=0.8.0"}
    assert by_extra["sglang"] == {"sglang": "==0.5.6", "nixl": "<=0.8.0"}
    assert by_extra["trtllm"] == {"tensorrt-llm": "==1.2.0rc5"}
    main = real_matrix.find_release("main")
    assert main is not None
    for framework in real_matrix.frameworks:  # the very requirements the model generates
        generated = {str(r) for r in framework.requirements(main.pins)}
        found = {
            str(Requirement(str(r).split(";")[0]))
            for r in requirements
            if r.marker is not None and r.marker.evaluate({"extra": framework.extra})
        }
        assert found == generated


@pytest.mark.slow
def test_rerun_skips_unchanged_and_rebuilds_what_changed(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    out = tmp_path / "out"
    args = ("--matrix", root / "matrix.toml", "--out", out, "--backend", "local", "--package")
    first = _wheels(*args, "ai-dynamo", "--package", "ai-dynamo-runtime", "--format", "json")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.whl")}
    again = _wheels(*args, "ai-dynamo", "--package", "ai-dynamo-runtime", "--format", "json")
    statuses = {r["target"]: r["status"] for r in json.loads(again.stdout)["results"]}
    assert set(statuses.values()) == {"unchanged", "not buildable here"}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.whl")} == before
    # A source edit rebuilds that package only; --force rebuilds everything.
    readme = root / "examples" / "ai-dynamo" / "src" / "ai_dynamo" / "__init__.py"
    readme.write_text(readme.read_text() + "\n# edited\n")
    edited = _wheels(*args, "ai-dynamo", "--package", "ai-dynamo-runtime", "--format", "json")
    statuses = {r["target"]: r["status"] for r in json.loads(edited.stdout)["results"]}
    assert statuses["wheel:ai-dynamo:main:py3:x86_64"] == "built"
    assert list(statuses.values()).count("unchanged") == 1
    # A matrix change (a new pin) rebuilds the meta package that carries it.
    text = (root / "matrix.toml").read_text()
    (root / "matrix.toml").write_text(text.replace('vllm = "0.12.0", nixl', 'vllm = "0.12.1", nixl', 1))
    bumped = _wheels(*args, "ai-dynamo", "--format", "json")
    assert json.loads(bumped.stdout)["results"][0]["status"] == "built"
    meta = out / "ai_dynamo-0.8.0.dev0-py3-none-any.whl"
    assert 'vllm[flashinfer]==0.12.1; extra == "vllm"' in {str(r) for r in requires_dist(meta)}
    forced = _wheels(*args, "ai-dynamo", "--force", "--format", "json")
    assert json.loads(forced.stdout)["results"][0]["status"] == "built"


@pytest.mark.slow
def test_provenance_and_reproducible_rebuilds(tmp_path: Path) -> None:
    """In a git work tree: the manifest names the commit, and a forced rebuild is byte-identical."""
    root = copy_project(tmp_path)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    out = tmp_path / "out"
    args = ("--matrix", root / "matrix.toml", "--out", out, "--backend", "local")
    packages = ("--package", "ai-dynamo", "--package", "ai-dynamo-runtime")
    assert _wheels(*args, *packages).returncode == 0
    first = {target: entry["sha256"] for target, entry in manifest(out).items()}
    runtime = f"wheel:ai-dynamo-runtime:main:cp310-abi3:{Host().arch}"
    source = manifest(out)[runtime]["source"]
    assert (source["git_commit"], source["dirty"]) == (head.stdout.strip(), False)
    assert _wheels(*args, *packages, "--force").returncode == 0
    assert {target: entry["sha256"] for target, entry in manifest(out).items()} == first
    # An uncommitted edit is built, and recorded as dirty.
    c_file = root / "examples" / "ai-dynamo-runtime" / "src" / "ai_dynamo_runtime" / "_blockhash.c"
    c_file.write_text(c_file.read_text() + "\n/* edited */\n")
    assert _wheels(*args, *packages).returncode == 0
    assert manifest(out)[runtime]["source"]["dirty"] is True


@pytest.mark.slow
def test_broken_package_next_to_a_good_one(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    source = root / "examples" / "ai-dynamo-runtime" / "src" / "ai_dynamo_runtime" / "_blockhash.c"
    source.write_text(source.read_text() + "\nthis is not C;\n")
    out = tmp_path / "out"
    result = _wheels("--matrix", root / "matrix.toml", "--out", out, "--backend", "local")
    assert result.returncode == 1
    assert wheels_in(out) == ["ai_dynamo-0.8.0.dev0-py3-none-any.whl"]
    host = Host().arch
    failed = f"wheel:ai-dynamo-runtime:main:cp310-abi3:{host}"
    log = out / "logs" / f"ai-dynamo-runtime-main-cp310-abi3-{host}.log"
    assert f"FAILED {failed}" in result.stderr
    assert str(log) in result.stderr
    assert "this is not C" in log.read_text()
    assert list(manifest(out)) == ["wheel:ai-dynamo:main:py3:x86_64"]


@pytest.mark.slow
def test_wheel_that_fails_the_gate_is_kept_aside(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    setup = root / "examples" / "ai-dynamo" / "setup.py"
    # A package that types its own version instead of the release's.
    setup.write_text(setup.read_text().replace('version=info["version"]', 'version="9.9"'))
    out = tmp_path / "out"
    result = _wheels(
        "--matrix", root / "matrix.toml", "--out", out, "--backend", "local", "--package", "ai-dynamo"
    )
    assert result.returncode == 1
    assert wheels_in(out) == []
    assert wheels_in(out / "rejected") == ["ai_dynamo-9.9-py3-none-any.whl"]
    report = json.loads((out / "rejected" / "ai_dynamo-9.9-py3-none-any.whl.audit.json").read_text())
    assert any("0.8.0.dev0" in problem for problem in report["problems"])
    record = json.loads((out / "manifest.json").read_text())
    assert record["wheels"] == []
    assert record["run"]["status"] == "failed"


def _wheel_needing_glibc_234(folder: Path, name: str) -> Path:
    """A wheel named like a manylinux_2_28 wheel whose extension calls dlopen@GLIBC_2.34."""
    c_file = folder / "ext.c"
    c_file.write_text('#include <dlfcn.h>\nvoid *open_it(void) { return dlopen("x", 0); }\n')
    shared = folder / "ext.abi3.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shared), str(c_file)], check=True)
    wheel = folder / name
    dist_info = "ai_dynamo_runtime-0.8.0.dev0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(shared, "ai_dynamo_runtime/_blockhash.abi3.so")
        archive.writestr(
            f"{dist_info}/METADATA",
            "Metadata-Version: 2.1\nName: ai-dynamo-runtime\nVersion: 0.8.0.dev0\n",
        )
        tag = parse_wheel_filename(name)[3]
        archive.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
            + "".join(f"Tag: {t}\n" for t in sorted(map(str, tag))),
        )
        archive.writestr(f"{dist_info}/RECORD", "")
    return wheel


@pytest.mark.slow
def test_audit_gate_keeps_an_underclaiming_wheel_aside(real_matrix: Matrix, tmp_path: Path) -> None:
    """The real audit rejects a wheel tagged 2.28 that needs GLIBC_2.34; it never reaches the output."""
    from buildmatrix.wheels.runner import Status, WheelsRequest, _Run

    host = Host()
    if Version(host.glibc or "0") < Version("2.34"):
        pytest.skip("the host's glibc predates dlopen@GLIBC_2.34")
    main = real_matrix.releases[0]
    (target,) = [
        t
        for t in expand(real_matrix, releases=[main], kind=TargetKind.WHEEL, arch=host.arch).wheels()
        if t.package is not None and t.package.name == "ai-dynamo-runtime"
    ]
    job = LocalBackend(host).plan(target, tmp_path / "work")
    assert isinstance(job, Job)
    built = tmp_path / "built"
    built.mkdir()
    wheel = _wheel_needing_glibc_234(
        built, f"ai_dynamo_runtime-0.8.0.dev0-cp310-abi3-manylinux_2_28_{host.arch}.whl"
    )
    out = tmp_path / "out"
    out.mkdir()
    run = _Run(WheelsRequest(matrix=real_matrix, releases=(main,), out=out), OutputFolder(out))
    status, name, audit, message = run.gate(job, target, wheel)
    assert status is Status.REJECTED
    assert name == f"rejected/{wheel.name}"
    assert "GLIBC_2.34" in audit
    assert "GLIBC_2.34" in message
    assert wheels_in(out) == []
    assert not (out / "manifest.json").exists()
    report = json.loads((out / "rejected" / f"{wheel.name}.audit.json").read_text())
    assert report["audit"]["ok"] is False
    assert any("GLIBC_2.34" in problem for problem in report["problems"])


@pytest.mark.slow
def test_interrupted_build_leaves_nothing_behind(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    out = tmp_path / "out"
    ok = _wheels(
        "--matrix", root / "matrix.toml", "--out", out, "--backend", "local", "--package", "ai-dynamo"
    )
    assert ok.returncode == 0, ok.stderr
    manifest_before = (out / "manifest.json").read_bytes()
    setup = root / "examples" / "ai-dynamo-runtime" / "setup.py"
    setup.write_text("import time\ntime.sleep(120)\n" + setup.read_text())
    command = [
        sys.executable,
        "-m",
        "buildmatrix",
        "wheels",
        "--matrix",
        str(root / "matrix.toml"),
        "--out",
        str(out),
        "--backend",
        "local",
    ]
    # A new session, so SIGINT reaches the whole process group as Ctrl-C in a terminal does.
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = out / "logs" / f"ai-dynamo-runtime-main-cp310-abi3-{Host().arch}.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the sleeping build is under way
        if log.exists() and "build --wheel" in log.read_text():
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the build never started")
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert not list(out.glob(".tmp-*"))
    assert not list(out.rglob("ai_dynamo_runtime*"))
    assert wheels_in(out) == ["ai_dynamo-0.8.0.dev0-py3-none-any.whl"]  # the earlier, whole one
    assert (out / "manifest.json").read_bytes() == manifest_before


@pytest.mark.slow
def test_kvbm_builds_where_cpython_312_exists(tmp_path: Path) -> None:
    """kvbm is 3.12-only: built with a python3.12 from PATH, or reported as not buildable."""
    env = {}
    pyenv_312 = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob("versions/3.12.*"))
    if pyenv_312:  # pyenv: make its 3.12 visible next to the current Python
        env["PYENV_VERSION"] = f"{Host().python.full_version}:{pyenv_312[-1].name}"
    out = tmp_path / "out"
    result = _wheels(
        "--matrix",
        REPO / "matrix.toml",
        "--out",
        out,
        "--backend",
        "local",
        "--package",
        "kvbm",
        "--arch",
        Host().arch,
        "--format",
        "json",
        env=env,
    )
    if not pyenv_312 and shutil.which("python3.12") is None:
        assert result.returncode == 2
        assert "needs CPython 3.12" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["status"] == "built"
    (name,) = wheels_in(out)
    expected = Tag("cp312", "cp312", f"manylinux_2_28_{Host().arch}")
    assert parse_wheel_filename(name)[3] == frozenset({expected})
    extracted = tmp_path / "kvbm"
    with zipfile.ZipFile(out / name) as archive:
        archive.extractall(extracted)
    check = (
        "from kvbm import BlockPool\n"
        "p = BlockPool(3)\n"
        "assert p.allocate(2) == [0, 1]\n"
        "p.release([0])\n"
        "assert p.free == 2\n"
    )
    subprocess.run(
        ["python3.12", "-c", check],
        env={**os.environ, **env, "PYTHONPATH": str(extracted)},
        check=True,
    )
