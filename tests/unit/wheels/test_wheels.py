"""The wheels job: generated metadata, cibuildwheel options, planning, real local builds.

Fast tests check the pure steps (build info, options, selection, outputs). Tests
marked slow build the bundled examples for real with the local backend (host
compiler, uv/PyPA build, auditwheel) and run the audit on them.
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from buildmatrix.expand import TargetKind, expand
from buildmatrix.model import Matrix
from buildmatrix.wheels.buildinfo import build_info, metadata_problems
from buildmatrix.wheels.cibw import CibuildwheelBackend, cibuildwheel_options
from buildmatrix.wheels.host import Host, resolve_pyenv_shim
from buildmatrix.wheels.jobs import Job, Unbuildable
from buildmatrix.wheels.local import LocalBackend
from buildmatrix.wheels.outputs import OutputFolder
from buildmatrix.wheels.runner import expected_tag
from buildmatrix.wheels.sources import read_source_tree
from tests.conftest import REPO_ROOT

REPO = REPO_ROOT


# -- helpers -----------------------------------------------------------------------------------


def copy_project(tmp_path: Path) -> Path:
    """matrix.toml and the examples in a scratch folder, free to edit."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "matrix.toml", root / "matrix.toml")
    shutil.copytree(REPO / "examples", root / "examples")
    return root


def requires_dist(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Metadata.from_email(archive.read(name).decode(), validate=False)
    return list(metadata.requires_dist or [])


def wheels_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.whl"))


def manifest(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "manifest.json").read_text())
    return {entry["target"]: entry for entry in data["wheels"]}


def other_arch(host: Host) -> str:
    return "aarch64" if host.arch == "x86_64" else "x86_64"


# -- generated metadata ----------------------------------------------------------------------


def test_meta_package_extras_come_from_the_release_pins(real_matrix: Matrix) -> None:
    main = real_matrix.find_release("main")
    assert main is not None
    info = build_info(real_matrix, real_matrix.wheel("ai-dynamo"), main)
    assert info.version == "0.8.0.dev0"
    assert [str(r) for r in info.dependencies] == ["ai-dynamo-runtime==0.8.0.dev0"]
    extras = {extra: {str(r) for r in reqs} for extra, reqs in info.optional_dependencies.items()}
    assert extras == {
        "vllm": {"vllm[flashinfer]==0.12.0", "nixl[cu12]<=0.8.0"},
        "sglang": {"sglang==0.5.6", "nixl[cu12]<=0.8.0"},
        "trtllm": {"tensorrt-llm==1.2.0rc5"},
    }
    # Another release gets its own pins and version: nothing is fixed in the package.
    old = real_matrix.find_release("v0.7.1")
    assert old is not None
    old_info = build_info(real_matrix, real_matrix.wheel("ai-dynamo"), old)
    assert [str(r) for r in old_info.dependencies] == ["ai-dynamo-runtime==0.7.1"]
    assert "vllm[flashinfer]==0.11.0" in {str(r) for r in old_info.optional_dependencies["vllm"]}


def test_native_packages_get_only_the_version(real_matrix: Matrix) -> None:
    main = real_matrix.find_release("main")
    assert main is not None
    info = build_info(real_matrix, real_matrix.wheel("ai-dynamo-runtime"), main)
    assert (info.dependencies, dict(info.optional_dependencies)) == ((), {})
    assert json.loads(info.text())["version"] == "0.8.0.dev0"


def test_expected_tags(real_matrix: Matrix) -> None:
    plan = expand(real_matrix, releases=[real_matrix.releases[0]], kind=TargetKind.WHEEL)
    tags = {t.id: str(expected_tag(t)) for t in plan.wheels()}
    assert tags == {
        "wheel:ai-dynamo:main:py3:x86_64": "py3-none-any",
        "wheel:ai-dynamo-runtime:main:cp310-abi3:x86_64": "cp310-abi3-manylinux_2_28_x86_64",
        "wheel:ai-dynamo-runtime:main:cp310-abi3:aarch64": "cp310-abi3-manylinux_2_28_aarch64",
        "wheel:kvbm:main:cp312:x86_64": "cp312-cp312-manylinux_2_28_x86_64",
        "wheel:kvbm:main:cp312:aarch64": "cp312-cp312-manylinux_2_28_aarch64",
    }


# -- cibuildwheel options ------------------------------------------------------------------------


def _cibuildwheel_calls(matrix: Matrix, engine: str = "docker") -> list[dict[str, Any]]:
    calls = []
    for release in matrix.releases[:1]:  # main
        plan = expand(matrix, releases=[release], kind=TargetKind.WHEEL)
        for package in matrix.wheels:
            for arch in package.arch:
                targets = [t for t in plan.wheels() if t.package == package and t.arch.name == arch]
                if targets and package.kind.value == "native":
                    calls.append(cibuildwheel_options(matrix, targets, engine=engine).to_json())
    return calls


def test_cibuildwheel_options_for_the_real_matrix(
    real_matrix: Matrix, golden: Callable[[str, str], None]
) -> None:
    calls = _cibuildwheel_calls(real_matrix)
    golden("wheels-cibuildwheel-main.json", json.dumps(calls, indent=2) + "\n")
    # One call per native package and arch; the repair command keeps kvbm's NIXL out.
    assert [(c["package"], c["arch"]) for c in calls] == [
        ("ai-dynamo-runtime", "x86_64"),
        ("ai-dynamo-runtime", "aarch64"),
        ("kvbm", "x86_64"),
        ("kvbm", "aarch64"),
    ]
    kvbm = calls[2]["env"]
    assert kvbm["CIBW_BUILD"] == "cp312-manylinux_x86_64"
    assert "--exclude 'libnixl*.so*'" in kvbm["CIBW_REPAIR_WHEEL_COMMAND_LINUX"]
    assert kvbm["CIBW_MANYLINUX_X86_64_IMAGE"] == real_matrix.manylinux_images["x86_64"]


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_real_cibuildwheel_accepts_the_options(real_matrix: Matrix, engine: str) -> None:
    """cibuildwheel itself reads our options and selects exactly our identifiers."""
    for call in _cibuildwheel_calls(real_matrix, engine):
        package = real_matrix.wheel(call["package"])
        result = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", *call["args"], "."],
            cwd=package.source,
            env={**os.environ, **call["env"]},
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.split() == call["identifiers"], call


def test_cibuildwheel_backend_plans_one_call_per_package_and_arch(
    real_matrix: Matrix, tmp_path: Path
) -> None:
    host = Host()
    plan = expand(real_matrix, releases=[real_matrix.releases[0]], kind=TargetKind.WHEEL)
    native = CibuildwheelBackend(real_matrix, host, engine="podman", emulate=False)
    planned = native.plan_all(plan.wheels(), tmp_path)
    foreign = [p for p in planned if isinstance(p, Unbuildable)]
    assert {p.target.arch.name for p in foreign} == {other_arch(host)}
    assert all("QEMU" in p.reason for p in foreign)
    jobs = [p for p in planned if isinstance(p, Job)]
    assert sorted((j.backend, str(j.package.name)) for j in jobs) == [
        ("cibuildwheel", "ai-dynamo-runtime"),
        ("cibuildwheel", "kvbm"),
        ("local", "ai-dynamo"),  # a pure wheel needs no container
    ]
    emulated = CibuildwheelBackend(real_matrix, host, engine="podman", emulate=True)
    jobs = [p for p in emulated.plan_all(plan.wheels(), tmp_path) if isinstance(p, Job)]
    assert len(jobs) == 5
    command = next(j for j in jobs if j.package.name == "kvbm" and j.note).commands[0]
    assert command.env["CIBW_CONTAINER_ENGINE"] == "podman"
    assert command.argv[-5:] == ("--archs", other_arch(host), "--output-dir", command.argv[-2], ".")


def test_a_partial_rebuild_narrows_the_cibuildwheel_call(real_matrix: Matrix, tmp_path: Path) -> None:
    from buildmatrix.wheels.runner import _narrowed

    release = real_matrix.releases[0]
    plan = expand(real_matrix, releases=[release], kind=TargetKind.WHEEL)
    kvbm = [t for t in plan.wheels() if t.package is not None and t.package.name == "kvbm"]
    backend = CibuildwheelBackend(real_matrix, Host(), engine="docker", emulate=True)
    job = next(j for j in backend.plan_all(kvbm, tmp_path) if isinstance(j, Job))
    wider = replace(
        job, commands=(replace(job.commands[0], env={**job.commands[0].env, "CIBW_BUILD": "a b"}),)
    )
    narrowed = _narrowed(wider, [job.targets[0]])
    assert narrowed.commands[0].env["CIBW_BUILD"] == job.targets[0].build_identifier
    assert narrowed.targets == (job.targets[0],)


# -- selection, planning, dry run -----------------------------------------------------------------


def test_local_backend_says_what_it_cannot_build(real_matrix: Matrix, tmp_path: Path) -> None:
    host = Host()
    backend = LocalBackend(host)
    plan = expand(real_matrix, releases=[real_matrix.releases[0]], kind=TargetKind.WHEEL)
    results = {t.id: backend.plan(t, tmp_path) for t in plan.wheels()}
    foreign = results[f"wheel:ai-dynamo-runtime:main:cp310-abi3:{other_arch(host)}"]
    assert isinstance(foreign, Unbuildable)
    assert "builds for the host's arch only" in foreign.reason
    native = results[f"wheel:ai-dynamo-runtime:main:cp310-abi3:{host.arch}"]
    assert isinstance(native, Job)
    repair = next(c for c in native.commands if "repair" in c.argv)
    assert repair.argv[3:8] == (
        "repair",
        "--only-plat",
        "--plat",
        f"manylinux_2_28_{host.arch}",
        "-w",
    )
    kvbm = results[f"wheel:kvbm:main:cp312:{host.arch}"]
    if host.interpreter("3.12") is None:
        assert isinstance(kvbm, Unbuildable)
        assert "needs CPython 3.12" in kvbm.reason
    else:
        assert isinstance(kvbm, Job)
        assert any("--exclude" in c.argv for c in kvbm.commands)


def test_dry_run_prints_commands_and_touches_nothing(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli("wheels", "--matrix", REPO / "matrix.toml", "--out", out, "--dry-run")
    assert result.code == 0, result.err
    assert "build --wheel" in result.out
    assert '"vllm[flashinfer]==0.12.0"' in result.out
    assert "auditwheel repair --only-plat --plat manylinux_2_28_" in result.out
    assert not out.exists()
    result = cli(
        "wheels",
        "--matrix",
        REPO / "matrix.toml",
        "--out",
        out,
        "--dry-run",
        "--backend",
        "cibuildwheel",
        "--arch",
        "aarch64",
        "--format",
        "json",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    envs = [c["env"] for r in data["results"] for c in r.get("commands", [])]
    assert {e["CIBW_BUILD"] for e in envs} == {"cp310-manylinux_aarch64", "cp312-manylinux_aarch64"}
    assert not out.exists()


def test_auto_backend_follows_the_container_engine(real_matrix: Matrix) -> None:
    from buildmatrix.errors import UsageError
    from buildmatrix.wheels.runner import WheelsRequest, _backend

    request = WheelsRequest(matrix=real_matrix, releases=real_matrix.releases[:1])
    with_engine, without_engine = Host(), Host()
    with_engine.__dict__["engine"] = "podman"  # what the cached probe would have found
    without_engine.__dict__["engine"] = None
    backend, note = _backend(request, with_engine)
    assert isinstance(backend, CibuildwheelBackend)
    assert (backend.engine, note) == ("podman", "")
    backend, note = _backend(request, without_engine)
    assert isinstance(backend, LocalBackend)
    assert "using the local backend" in note
    explicit = replace(request, backend="cibuildwheel")
    with pytest.raises(UsageError, match="needs a container engine"):
        _backend(explicit, without_engine)
    backend, note = _backend(replace(explicit, dry_run=True), without_engine)
    assert isinstance(backend, CibuildwheelBackend)
    assert "showing the docker options" in note


def test_bad_selection_is_a_usage_error(cli: Callable[..., Any], tmp_path: Path) -> None:
    matrix = REPO / "matrix.toml"
    result = cli("wheels", "--matrix", matrix, "--package", "kvbn", "--dry-run")
    assert result.code == 2
    assert "did you mean 'kvbm'" in result.err
    result = cli("wheels", "--matrix", matrix, "--package", "kvbm", "--python", "3.11", "--dry-run")
    assert result.code == 2
    assert "no wheel target matches" in result.err
    result = cli("wheels", "--matrix", matrix, "--release", "v9", "--dry-run")
    assert result.code == 2


# -- sources and outputs ------------------------------------------------------------------------


def test_source_tree_digest_follows_content_not_build_output(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    shutil.copytree(REPO / "examples" / "ai-dynamo", root)
    first = read_source_tree(root)
    assert "pyproject.toml" in first.files
    (root / "build" / "lib").mkdir(parents=True)
    (root / "build" / "lib" / "junk.py").write_text("x = 1\n")
    (root / "src" / "ai_dynamo" / "__pycache__").mkdir()
    (root / "src" / "ai_dynamo" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert read_source_tree(root).digest == first.digest
    (root / "src" / "ai_dynamo" / "__init__.py").write_text("# changed\n")
    assert read_source_tree(root).digest != first.digest
    # An output folder inside the package is neither hashed nor staged.
    (root / "my-out" / "logs").mkdir(parents=True)
    (root / "my-out" / "logs" / "x.log").write_text("log\n")
    assert (
        read_source_tree(root, exclude=(root / "my-out",)).digest
        == read_source_tree(root, exclude=(root / "my-out",)).digest
    )
    assert "my-out/logs/x.log" in read_source_tree(root).files
    assert "my-out/logs/x.log" not in read_source_tree(root, exclude=(root / "my-out",)).files
    shutil.rmtree(root / "my-out")
    staged = tmp_path / "staged"
    read_source_tree(root).stage(staged)
    assert not (staged / "build").exists()
    assert (staged / "src" / "ai_dynamo" / "__init__.py").read_text() == "# changed\n"


def test_work_folder_is_removed_and_abandoned_ones_are_cleaned(tmp_path: Path) -> None:
    out = OutputFolder(tmp_path / "out")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / "out" / f".tmp-wheels-{dead.pid}-abcd"
    abandoned.mkdir(parents=True)

    def interrupted_build() -> None:
        with out.work_folder() as work:
            (work / "partial.whl").write_bytes(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_build()
    assert not abandoned.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["logs"]


def test_metadata_check_catches_a_package_that_ignores_the_build_file(
    real_matrix: Matrix, tmp_path: Path
) -> None:
    main = real_matrix.find_release("main")
    assert main is not None
    info = build_info(real_matrix, real_matrix.wheel("ai-dynamo"), main)
    wheel = tmp_path / "ai_dynamo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "ai_dynamo-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: ai-dynamo\nVersion: 1.0\n"
            'Provides-Extra: vllm\nRequires-Dist: vllm==0.10.2; extra == "vllm"\n',
        )
    problems = metadata_problems(wheel, info)
    assert any("version 1.0" in p for p in problems)
    assert any("vllm[flashinfer]==0.12.0" in p for p in problems)
    assert any("'sglang'" in p for p in problems)


# -- real builds -----------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------- pyenv shims


def _fake_pyenv(root: Path, installed: tuple[str, ...], global_version: str | None) -> Path:
    """A pyenv root with a python3.12 shim and python3.12 in each installed version."""
    shim = root / "shims" / "python3.12"
    shim.parent.mkdir(parents=True)
    shim.write_text("#!/bin/sh\nexit 127\n")
    for version in installed:
        binary = root / "versions" / version / "bin" / "python3.12"
        binary.parent.mkdir(parents=True)
        binary.write_text("")
    (root / "versions").mkdir(exist_ok=True)
    if global_version is not None:
        (root / "version").write_text(f"{global_version}\n# a comment\n")
    return shim


def test_pyenv_shim_resolves_like_pyenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = _fake_pyenv(tmp_path / "pyenv", ("3.11.7", "3.12.1"), global_version="3.11.7")
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    monkeypatch.setenv("PYENV_DIR", str(tmp_path / "project"))
    (tmp_path / "project").mkdir()
    # The global version has no python3.12: pyenv would fail, so nothing is run.
    (tmp_path / "pyenv" / "versions" / "3.11.7" / "bin" / "python3.12").unlink()
    assert resolve_pyenv_shim(shim, "python3.12") is None
    # $PYENV_VERSION names several versions; the first that has the command wins.
    monkeypatch.setenv("PYENV_VERSION", "3.11.7:3.12.1")
    assert resolve_pyenv_shim(shim, "python3.12") == tmp_path / "pyenv/versions/3.12.1/bin/python3.12"
    # Without it, the nearest .python-version above the folder decides.
    monkeypatch.delenv("PYENV_VERSION")
    (tmp_path / ".python-version").write_text("3.12.1\n")
    assert resolve_pyenv_shim(shim, "python3.12") == tmp_path / "pyenv/versions/3.12.1/bin/python3.12"


def test_pyenv_shim_left_to_pyenv_when_unsure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = _fake_pyenv(tmp_path / "pyenv", ("3.12.1",), global_version=None)
    monkeypatch.setenv("PYENV_VERSION", "3.12")  # a prefix only pyenv itself resolves
    assert resolve_pyenv_shim(shim, "python3.12") == shim
    plain = tmp_path / "bin" / "python3.12"  # not a shim at all
    assert resolve_pyenv_shim(plain, "python3.12") == plain
