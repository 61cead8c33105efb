"""CI job matrices, sharding at 256, and the workflows that consume them."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from buildmatrix import ci
from buildmatrix.errors import UsageError
from buildmatrix.expand import expand
from buildmatrix.model import Matrix, Release
from tests.conftest import REPO_ROOT, Result

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# `.github/workflows/build-wheels.yml` as the self-repository or workspace-relative form.
LOCAL_WORKFLOW = re.compile(r"^(?:\$|\.)/\.github/workflows/(?P<file>[\w.-]+\.ya?ml)$")
SHA_PIN = re.compile(r"^\s*-?\s*uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def _many_releases(matrix: Matrix, count: int) -> Matrix:
    """The real matrix with ``count`` released copies of v0.7.1 (v1.0.0, v1.0.1, ...)."""
    base = matrix.find_release("v0.7.1")
    assert base is not None
    releases = tuple(
        dataclasses.replace(base, name=f"v1.0.{n}", display=f"v1.0.{n}", version=Version(f"1.0.{n}"))
        for n in range(count)
    )
    return dataclasses.replace(matrix, releases=releases)


# ---------------------------------------------------------------------------
# Sharding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "sizes"),
    [(0, []), (1, [1]), (256, [256]), (257, [256, 1]), (512, [256, 256]), (600, [256, 256, 88])],
)
def test_shard_sizes_at_the_256_boundary(jobs: int, sizes: list[int]) -> None:
    items = [{"id": str(n)} for n in range(jobs)]
    shards = ci.shard(items)
    assert [len(s["include"]) for s in shards] == sizes
    assert [job for s in shards for job in s["include"]] == items  # nothing lost, order kept
    assert ci.shard_count(jobs) == max(1, len(sizes))


def test_a_plan_over_256_jobs_is_sharded_into_valid_matrices(real_matrix: Matrix) -> None:
    matrix = _many_releases(real_matrix, 50)  # 50 x 6 image jobs = 300, 50 x 5 wheel jobs = 250
    plan = expand(matrix)
    outputs = ci.pipeline_outputs(plan, matrix.releases)
    images = json.loads(outputs["images"])
    wheels = json.loads(outputs["wheels"])
    assert [len(s["include"]) for s in images] == [256, 44]
    assert [len(s["include"]) for s in wheels] == [250]
    assert json.loads(outputs["image_shards"]) == [0, 1]
    assert json.loads(outputs["wheel_shards"]) == [0]
    ids = [job["id"] for s in images for job in s["include"]]
    assert len(ids) == len(set(ids)) == 300
    assert ids == [job["id"] for job in ci.image_jobs(plan)]
    manifests = json.loads(outputs["manifests"])
    assert [len(s["include"]) for s in manifests] == [150]
    assert json.loads(outputs["manifest_shards"]) == [0]


def test_plan_github_format_needs_a_shard_over_256(real_matrix: Matrix) -> None:
    plan = expand(_many_releases(real_matrix, 30))  # 30 x 11 = 330 targets
    with pytest.raises(UsageError, match="pass --shard N with N from 0 to 1"):
        ci.github_matrix(plan.targets)
    first = ci.github_matrix(plan.targets, shard=0)["include"]
    second = ci.github_matrix(plan.targets, shard=1)["include"]
    assert (len(first), len(second)) == (256, 74)
    assert [j["id"] for j in first + second] == [t.id for t in plan.targets]
    with pytest.raises(UsageError, match="out of range"):
        ci.github_matrix(plan.targets, shard=2)


def test_manifest_merges_over_256_are_sharded_too(real_matrix: Matrix) -> None:
    matrix = _many_releases(real_matrix, 90)  # 270 release x framework merges
    outputs = ci.pipeline_outputs(expand(matrix), matrix.releases)
    assert [len(s["include"]) for s in json.loads(outputs["manifests"])] == [256, 14]
    assert json.loads(outputs["manifest_shards"]) == [0, 1]


# ---------------------------------------------------------------------------
# The jobs of one release
# ---------------------------------------------------------------------------


def _release(matrix: Matrix, name: str) -> Release:
    release = matrix.find_release(name)
    assert release is not None
    return release


def test_pipeline_outputs_for_one_release(real_matrix: Matrix) -> None:
    release = _release(real_matrix, "v0.7.1")
    outputs = ci.pipeline_outputs(expand(real_matrix, releases=[release]), [release])
    assert tuple(outputs) == ci.OUTPUTS
    assert json.loads(outputs["releases"]) == ["v0.7.1"]
    wheels = json.loads(outputs["wheels"])[0]["include"]
    assert [(j["package"], j["arch"], j["runner"]) for j in wheels] == [
        ("ai-dynamo", "x86_64", "ubuntu-24.04"),
        ("ai-dynamo-runtime", "x86_64", "ubuntu-24.04"),
        ("ai-dynamo-runtime", "aarch64", "ubuntu-24.04-arm"),
        ("kvbm", "x86_64", "ubuntu-24.04"),
        ("kvbm", "aarch64", "ubuntu-24.04-arm"),
    ]
    assert {j["pythons"] for j in wheels if j["package"] == "kvbm"} == {"3.12"}
    assert len({j["artifact"] for j in wheels}) == len(wheels)
    images = json.loads(outputs["images"])[0]["include"]
    by_id = {j["id"]: j for j in images}
    trtllm_arm = by_id["image:trtllm:v0.7.1:cuda13.0:linux/arm64"]
    assert trtllm_arm["runner"] == "ubuntu-24.04-arm"
    assert trtllm_arm["tag"] == "v0.7.1-cuda13"
    assert trtllm_arm["arch_tag"] == "v0.7.1-cuda13-arm64"
    assert trtllm_arm["pins"] == "tensorrt-llm==1.2.0rc3 nixl==0.7.1"
    manifests = json.loads(outputs["manifests"])[0]["include"]
    assert [(m["image"], m["tag"], m["platforms"], m["digests"]) for m in manifests] == [
        ("vllm-runtime", "v0.7.1-cuda12", "linux/amd64 linux/arm64", 2),
        ("sglang-runtime", "v0.7.1-cuda12", "linux/amd64 linux/arm64", 2),
        ("tensorrtllm-runtime", "v0.7.1-cuda13", "linux/amd64 linux/arm64", 2),
    ]
    # Every image job's digest artifact is matched by exactly one merge job's pattern.
    for job in images:
        patterns = [m for m in manifests if Path(job["digest_artifact"]).match(m["digest_pattern"])]
        assert len(patterns) == 1
        assert patterns[0]["framework"] == job["framework"]


@pytest.mark.parametrize(
    ("ref", "release"),
    [
        ("refs/tags/v0.7.1", "v0.7.1"),
        ("refs/tags/v0.7.0.post1", "v0.7.0.post1"),
        ("refs/heads/main", "main"),
        ("refs/heads/feature/x", "main"),  # a branch without a release builds top of tree
    ],
)
def test_release_for_ref(real_matrix: Matrix, ref: str, release: str) -> None:
    assert ci.release_for_ref(real_matrix, ref).name == release


def test_unknown_tag_is_a_usage_error(real_matrix: Matrix) -> None:
    with pytest.raises(UsageError, match=r"tag 'v9.9.9' has no \[\[release\]\]"):
        ci.release_for_ref(real_matrix, "refs/tags/v9.9.9")


def test_write_github_output_appends_single_and_multi_line_values(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n", encoding="utf-8")
    ci.write_github_output(path, {"one": '{"a":1}', "two": "line 1\nline 2"})
    text = path.read_text(encoding="utf-8")
    assert text.startswith('earlier=1\none={"a":1}\n')
    match = re.search(r"^two<<(\S+)\nline 1\nline 2\n\1\n$", text, re.MULTILINE)
    assert match is not None


def test_ci_command_writes_outputs(cli: Callable[..., Result], tmp_path: Path, monkeypatch: Any) -> None:
    output = tmp_path / "github_output"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli(
        "ci", "--matrix", REPO_ROOT / "matrix.toml", "--ref", "refs/tags/v0.7.1", "--github-output", output
    )
    assert result.code == 0, result.err
    written = dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())
    assert tuple(written) == ci.OUTPUTS
    assert json.loads(written["releases"]) == ["v0.7.1"]
    assert "`image:vllm:v0.7.1:cuda12.8:linux/arm64`" in summary.read_text(encoding="utf-8")
    bad = cli("ci", "--matrix", REPO_ROOT / "matrix.toml", "--release", "v9")
    assert bad.code == 2
    assert "unknown release 'v9'" in bad.err


def test_ci_command_json(cli: Callable[..., Result], monkeypatch: Any) -> None:
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = cli("ci", "--matrix", REPO_ROOT / "matrix.toml", "--release", "main", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["wheel_shards"] == [0]
    assert data["manifest_shards"] == [0]
    assert len(data["manifests"][0]["include"]) == 3  # main x 3 frameworks


# ---------------------------------------------------------------------------
# The workflows
# ---------------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _plan_step_outputs(plan_job: dict[str, Any]) -> set[str]:
    """The outputs the plan job's `buildmatrix ci` step writes (it writes ci.OUTPUTS)."""
    steps = [s for s in plan_job["steps"] if s.get("id") == "plan"]
    assert len(steps) == 1
    assert re.search(r"\bbuildmatrix ci\b|\bargs=\(ci\b", steps[0]["run"])
    return set(ci.OUTPUTS)


CALLERS = ["release.yml", "pr.yml"]


@pytest.mark.parametrize("name", CALLERS)
def test_matrix_expressions_read_outputs_the_plan_job_declares_and_produces(name: str) -> None:
    workflow = _load(name)
    plan = workflow["jobs"]["plan"]
    declared = plan["outputs"]
    produced = _plan_step_outputs(plan)
    # Every declared output is wired to the plan step's output of the same name, which it writes.
    for output, expression in declared.items():
        assert expression == f"${{{{ steps.plan.outputs.{output} }}}}"
        assert output in produced
    references = set()
    json_reads = set()
    for job_name, job in workflow["jobs"].items():
        for text in _strings(job):
            for output in re.findall(r"needs\.plan\.outputs\.(\w+)", text):
                assert "plan" in _needs(job), f"{job_name} reads plan outputs without needing plan"
                references.add(output)
            json_reads.update(re.findall(r"fromJSON\(needs\.plan\.outputs\.(\w+)\)", text))
    assert references, "the workflow reads no plan outputs"
    assert references <= set(declared), f"undeclared: {references - set(declared)}"
    # What is parsed as JSON really is JSON in the plan's outputs.
    assert json_reads
    sample = ci.pipeline_outputs(expand_real(), ())
    for output in json_reads:
        json.loads(sample[output])


def expand_real() -> Any:
    from buildmatrix.loader import load_matrix

    return expand(load_matrix(REPO_ROOT / "matrix.toml"), releases=None)


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


@pytest.mark.parametrize(
    ("called", "jobs"),
    [
        ("build-wheels.yml", ci.wheel_jobs),
        ("build-images.yml", ci.image_jobs),
        ("merge-images.yml", ci.manifest_jobs),
    ],
)
def test_called_workflows_read_only_keys_the_jobs_have(called: str, jobs: Callable[..., Any]) -> None:
    keys = set(jobs(expand_real())[0])
    workflow = _load(called)
    used = {key for text in _strings(workflow["jobs"]) for key in re.findall(r"\bmatrix\.(\w+)", text)}
    assert used, f"{called} reads no matrix keys"
    assert used <= keys, f"{called} reads keys the plan does not produce: {used - keys}"


@pytest.mark.parametrize("caller", CALLERS)
def test_callers_pass_one_shard_to_local_workflows_that_exist(caller: str) -> None:
    for job in _load(caller)["jobs"].values():
        if "uses" not in job:
            continue
        match = LOCAL_WORKFLOW.match(job["uses"])
        assert match, job["uses"]
        called = _load(match["file"])
        # PyYAML reads the `on:` key as True.
        inputs = called[True]["workflow_call"]["inputs"]
        assert set(job["with"]) <= set(inputs)
        assert job["strategy"]["matrix"]["shard"].startswith("${{ fromJSON(needs.plan.outputs.")


def test_release_is_gated_on_audit_verify_and_docs() -> None:
    jobs = _load("release.yml")["jobs"]
    for publishing in ("manifests", "pypi"):
        assert {"audit", "verify", "docs"} <= set(_needs(jobs[publishing]))
    runs = " ".join(
        step.get("run", "")
        for name in ("release.yml", "merge-images.yml")
        for job in _load(name)["jobs"].values()
        for step in job.get("steps", [])
    )
    assert "buildmatrix audit dist" in runs
    assert "buildmatrix verify --release" in runs
    assert "buildmatrix docs --check" in runs
    assert "docker buildx imagetools create" in runs


def test_cache_is_written_only_from_protected_refs() -> None:
    images = _load("release.yml")["jobs"]["images"]
    assert "github.ref_protected" in images["with"]["write-cache"]
    step = next(
        s for s in _load("build-images.yml")["jobs"]["image"]["steps"] if "--cache-to" in s.get("run", "")
    )
    assert 'if [ "${WRITE_CACHE}" = "true" ]' in step["run"]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_hygiene(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    workflow = yaml.safe_load(text)
    # Every action pinned by a full commit SHA with its version as a comment.
    for line in text.splitlines():
        if re.match(r"^\s*-?\s*uses: ", line) and not LOCAL_WORKFLOW.match(line.split("uses: ", 1)[1]):
            assert SHA_PIN.match(line), f"not pinned by SHA with a # vX.Y.Z comment: {line.strip()}"
    # Least privilege: nothing at the top, each job asks for what it needs.
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} has no explicit permissions"
        # No template expansion inside scripts: values reach `run` through `env`.
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"{name}: expression inside run: {step['run']}"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


# Subcommands the workflows call that other branches of this project deliver; once
# they are registered in buildmatrix.cli.COMMANDS their flags are checked too.
DELIVERED_ELSEWHERE = {"wheels", "images", "audit", "verify"}
INVOCATION = re.compile(r"(?:\bbuildmatrix|\bargs=\()\s+(?P<command>[a-z_]+)|\bargs=\((?P<array>[a-z_]+)")


def _subcommand_options() -> dict[str, set[str]]:
    import argparse

    from buildmatrix.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(sub._option_string_actions) for name, sub in subparsers.choices.items()}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_buildmatrix_calls_use_flags_the_cli_has(path: Path) -> None:
    options = _subcommand_options()
    calls = 0
    for job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].values():
        for step in job.get("steps", []):
            script = step.get("run", "")
            commands = {m["command"] or m["array"] for m in INVOCATION.finditer(script)}
            if not commands:
                continue
            assert len(commands) == 1, f"one buildmatrix command per step: {commands}"
            (command,) = commands
            calls += 1
            if command not in options:
                assert command in DELIVERED_ELSEWHERE, f"unknown subcommand {command!r}"
                continue
            flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", script))
            assert flags <= options[command], f"{command} has no {flags - options[command]}"
    if path.name in ("release.yml", "pr.yml", "build-wheels.yml", "build-images.yml"):
        assert calls


def test_outputs_over_githubs_1mb_per_job_are_refused(real_matrix: Matrix) -> None:
    matrix = _many_releases(real_matrix, 400)  # 4,400 jobs: ~1.8 MB of matrices
    with pytest.raises(UsageError, match=r"over GitHub's 1000000 bytes of outputs per job"):
        ci.pipeline_outputs(expand(matrix), matrix.releases)


# ---------------------------------------------------------------------------
# Runners from matrix.toml
# ---------------------------------------------------------------------------

RUNNER_TABLE = """
[runners.wheel]
aarch64 = "ubuntu-24.04-arm"

[runners.image]
x86_64 = "ubuntu-24.04-16core"
aarch64 = ["self-hosted", "linux", "arm64", "big-disk"]
"""


def _matrix_with(tmp_path: Path, replace: tuple[str, str] = ("", ""), append: str = "") -> Path:
    text = (REPO_ROOT / "matrix.toml").read_text(encoding="utf-8")
    start = text.index("[runners.wheel]")
    end = text.index("# ---", start)
    text = text[:start] + text[end:]  # the real matrix without its [runners] tables
    path = tmp_path / "matrix.toml"
    path.write_text(text.replace(*replace) + append, encoding="utf-8")
    return path


def test_runner_labels_per_job_kind_and_arch_come_from_the_matrix(tmp_path: Path) -> None:
    from buildmatrix.loader import load_matrix

    matrix = load_matrix(_matrix_with(tmp_path, append=RUNNER_TABLE))
    assert matrix.runners["image"]["aarch64"] == ("self-hosted", "linux", "arm64", "big-disk")
    release = _release(matrix, "v0.7.1")
    plan = expand(matrix, releases=[release])
    outputs = ci.pipeline_outputs(plan, [release], runners=matrix.runners)
    images = json.loads(outputs["images"])[0]["include"]
    wheels = json.loads(outputs["wheels"])[0]["include"]
    runners = {(j["framework"], j["arch"]): j["runner"] for j in images}
    assert runners[("vllm", "x86_64")] == "ubuntu-24.04-16core"
    assert runners[("trtllm", "aarch64")] == ["self-hosted", "linux", "arm64", "big-disk"]
    # No [runners.wheel] x86_64: the built-in native default.
    assert {(j["arch"], j["runner"]) for j in wheels} == {
        ("x86_64", "ubuntu-24.04"),
        ("aarch64", "ubuntu-24.04-arm"),
    }
    # The committed matrix names every runner the release workflow uses.
    real = load_matrix(REPO_ROOT / "matrix.toml")
    for kind in ("wheel", "image"):
        assert set(real.runners[kind]) == {a.name for a in real.archs}


def test_the_ci_command_plans_the_matrix_runners(cli: Callable[..., Result], tmp_path: Path) -> None:
    matrix = _matrix_with(tmp_path, append=RUNNER_TABLE)
    result = cli("ci", "--matrix", matrix, "--release", "v0.7.1", "--format", "json")
    assert result.code == 0, result.err
    jobs = json.loads(result.out)["images"][0]["include"]
    assert {j["arch"]: j["runner"] for j in jobs if j["framework"] == "sglang"} == {
        "x86_64": "ubuntu-24.04-16core",
        "aarch64": ["self-hosted", "linux", "arm64", "big-disk"],
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[runners.docs]\nx86_64 = "ubuntu-24.04"\n', r"runners\.docs.*unknown runner job kind 'docs'"),
        ('[runners.image]\nriscv64 = "ubuntu-24.04"\n', r"runners\.image\.riscv64.*unknown arch 'riscv64'"),
        ('[runners.image]\nx86_64 = "ubuntu 24.04"\n', r"runners\.image\.x86_64.*label 'ubuntu 24.04'"),
        ("[runners.image]\nx86_64 = []\n", r"runners\.image\.x86_64.*non-empty list of labels"),
        ('[runners.image]\nx86_64 = "$(id)"\n', r"runner label '\$\(id\)'"),
    ],
)
def test_bad_runner_tables_are_refused_with_their_key(
    cli: Callable[..., Result], tmp_path: Path, table: str, message: str
) -> None:
    result = cli("ci", "--matrix", _matrix_with(tmp_path, append="\n" + table), "--release", "main")
    assert result.code == 2
    assert re.search(message, result.err), result.err


@pytest.mark.parametrize(("name", "job"), [("build-wheels.yml", "wheel"), ("build-images.yml", "image")])
def test_build_jobs_run_on_the_planned_runner(name: str, job: str) -> None:
    assert _load(name)["jobs"][job]["runs-on"] == "${{ matrix.runner }}"


# ---------------------------------------------------------------------------
# Publishing: the planned release matches the tag; only guarded runs publish
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "release", "event", "protected", "images", "pypi"),
    [
        ("refs/tags/v0.7.1", None, "push", False, True, True),
        ("refs/tags/v0.7.1", "v0.7.1", "workflow_dispatch", True, True, True),
        ("refs/tags/v0.7.1", "v0.7.1", "workflow_dispatch", False, False, False),
        ("refs/heads/main", None, "push", True, True, False),
        ("refs/heads/main", "v0.7.1", "workflow_dispatch", True, False, False),  # a branch never
        ("refs/heads/feature/x", None, "workflow_dispatch", False, False, False),
        ("refs/heads/feature/x", "main", "push", False, False, False),
    ],
)
def test_who_may_publish(  # noqa: PLR0917 (the parametrized columns)
    real_matrix: Matrix,
    ref: str,
    release: str | None,
    event: str,
    protected: bool,
    images: bool,
    pypi: bool,
) -> None:
    releases = [ci.release_for_ref(real_matrix, ref) if release is None else _release(real_matrix, release)]
    decision = ci.publishing(real_matrix, releases, ref, event=event, protected=protected)
    assert (decision.images, decision.pypi) == (images, pypi), decision.reason
    outputs = ci.pipeline_outputs(expand(real_matrix, releases=releases), releases, publish=decision)
    assert (outputs["publish_images"], outputs["publish_pypi"]) == (str(images).lower(), str(pypi).lower())


@pytest.mark.parametrize("releases", [["main"], ["v0.7.0"], ["v0.7.1", "main"], []])
def test_a_tag_run_of_another_release_is_refused(real_matrix: Matrix, releases: list[str]) -> None:
    chosen = [_release(real_matrix, name) for name in releases]
    refused = r"refs/tags/v0\.7\.1 builds release 'v0\.7\.1', but the plan is for"
    with pytest.raises(UsageError, match=refused):
        ci.publishing(real_matrix, chosen, "refs/tags/v0.7.1", event="workflow_dispatch", protected=True)


def _plan_step(workflow: str = "release.yml") -> dict[str, Any]:
    steps = [s for s in _load(workflow)["jobs"]["plan"]["steps"] if s.get("id") == "plan"]
    assert len(steps) == 1
    return steps[0]


def _run_plan_step(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run release.yml's plan step script as the runner would: bash, its env, our buildmatrix."""
    output = tmp_path / "github_output"
    output.write_text("", encoding="utf-8")
    environment = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        **env,
    }
    script = _plan_step()["run"]
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    written = dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())
    return result, written


def test_the_plan_step_refuses_a_manual_run_of_main_on_a_tag(tmp_path: Path) -> None:
    """The finding: a manual run on tag v0.7.1 with release `main` built and uploaded 0.8.0.dev0."""
    step_env = _plan_step()["env"]
    assert step_env["GIT_REF"] == "${{ github.ref }}"
    assert step_env["RELEASE_INPUT"] == "${{ inputs.release }}"
    assert step_env["EVENT"] == "${{ github.event_name }}"
    assert step_env["REF_PROTECTED"] == "${{ github.ref_protected }}"
    refused, written = _run_plan_step(
        tmp_path,
        RELEASE_INPUT="main",
        GIT_REF="refs/tags/v0.7.1",
        EVENT="workflow_dispatch",
        REF_PROTECTED="true",
    )
    assert refused.returncode == 2
    assert "refs/tags/v0.7.1 builds release 'v0.7.1', but the plan is for 'main'" in refused.stderr
    assert written == {}
    # The same manual run without a release input builds the tag's own release.
    ok, written = _run_plan_step(
        tmp_path, RELEASE_INPUT="", GIT_REF="refs/tags/v0.7.1", EVENT="push", REF_PROTECTED="false"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(written["releases"]) == ["v0.7.1"]
    assert (written["publish_images"], written["publish_pypi"]) == ("true", "true")
    # A manual run from an unprotected branch builds, but publishes nothing.
    branch, written = _run_plan_step(
        tmp_path,
        RELEASE_INPUT="v0.7.1",
        GIT_REF="refs/heads/x",
        EVENT="workflow_dispatch",
        REF_PROTECTED="false",
    )
    assert branch.returncode == 0, branch.stderr
    assert (written["publish_images"], written["publish_pypi"]) == ("false", "false")
    dispatch = _load("release.yml")[True]["workflow_dispatch"]["inputs"]["release"]
    assert dispatch["default"] == ""
    assert dispatch["required"] is False


def _condition(job: dict[str, Any]) -> str:
    return " ".join(str(job.get("if", "")).split())


def test_publishing_jobs_are_guarded() -> None:
    jobs = _load("release.yml")["jobs"]
    declared = jobs["plan"]["outputs"]
    assert {"publish_images", "publish_pypi"} <= set(declared)
    manifests = _condition(jobs["manifests"])
    pypi = _condition(jobs["pypi"])
    for condition, output in ((manifests, "publish_images"), (pypi, "publish_pypi")):
        assert f"needs.plan.outputs.{output} == 'true'" in condition
        assert "(github.event_name == 'push' || github.ref_protected)" in condition
        for gate in ("audit", "verify", "docs"):
            assert f"needs.{gate}.result == 'success'" in condition
    assert "startsWith(github.ref, 'refs/tags/v')" in pypi
    # Nothing else in the release workflow can publish: only these two jobs may write
    # packages outside staging or mint an OIDC token.
    for name, job in jobs.items():
        if name not in ("manifests", "pypi", "images"):
            assert "packages" not in job["permissions"], name
            assert "id-token" not in job["permissions"], name


def test_pypi_waits_for_the_images_gate_and_publishes_sdists() -> None:
    jobs = _load("release.yml")["jobs"]
    pypi = jobs["pypi"]
    assert {"manifests", "sdists", "audit", "verify", "docs"} <= set(_needs(pypi))
    condition = _condition(pypi)
    assert "needs.manifests.result == 'success'" in condition
    # Skipped manifests pass only when the plan has no images at all.
    assert "(needs.manifests.result == 'skipped' && needs.plan.outputs.manifest_shards == '[]')" in condition
    downloads = [
        s["with"] for s in pypi["steps"] if s.get("uses", "").startswith("actions/download-artifact@")
    ]
    assert {"pattern": "wheels-*", "path": "dist", "merge-multiple": True} in downloads
    assert {"name": "sdists", "path": "dist"} in downloads
    publish = pypi["steps"][-1]
    assert publish["uses"].startswith("pypa/gh-action-pypi-publish@")
    assert publish["with"]["packages-dir"] == "dist"
    sdists = jobs["sdists"]
    upload = next(s for s in sdists["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "sdists"
    assert upload["with"]["path"] == "sdist/*.tar.gz"


def test_one_frameworks_failure_blocks_only_its_own_manifest() -> None:
    caller = _load("release.yml")["jobs"]["manifests"]
    condition = _condition(caller)
    # Not skipped when some image job failed (the default `success()` would skip it)...
    assert condition.startswith("${{ !cancelled()")
    assert "needs.images.result" not in condition
    assert caller["strategy"]["fail-fast"] is False
    # ...and each merge job is one release and framework, with its own digest count.
    job = _load("merge-images.yml")["jobs"]["manifest"]
    assert job["strategy"]["fail-fast"] is False
    assert job["strategy"]["matrix"] == "${{ fromJSON(inputs.matrix) }}"
    check = next(s for s in job["steps"] if "EXPECTED" in s.get("env", {}))
    assert check["env"]["EXPECTED"] == "${{ matrix.digests }}"
    assert '-ne "${EXPECTED}"' in check["run"]


# ---------------------------------------------------------------------------
# Images: digests from the build's metadata, commit tags, verify before merge
# ---------------------------------------------------------------------------


def _steps(name: str, job: str) -> list[dict[str, Any]]:
    steps = _load(name)["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def test_image_digests_come_from_the_bake_metadata_file() -> None:
    steps = _steps("build-images.yml", "image")
    scripts = [s.get("run", "") for s in steps]
    build = next(i for i, s in enumerate(scripts) if "docker buildx bake" in s)
    record = next(i for i, s in enumerate(scripts) if "containerimage.digest" in s)
    assert build < record
    metadata = re.search(r'--metadata-file "([^"]+)"', scripts[build])
    assert metadata, scripts[build]
    assert metadata[1] in scripts[record]  # the digest is read from the file the build wrote
    assert "--push" in scripts[build]
    # Never read back from a tag, which another run may move in between.
    assert not any("imagetools inspect" in s for s in scripts)
    assert re.search(r"\^sha256:\[0-9a-f\]\{64\}\$", scripts[record])


def test_staging_tags_carry_the_commit() -> None:
    step = next(s for s in _steps("build-images.yml", "image") if "docker buildx bake" in s.get("run", ""))
    assert step["env"]["COMMIT"] == "${{ github.sha }}"
    tags = re.search(r'--set "\$\{target\}\.tags=\$\{staging\}"', step["run"])
    assert tags, step["run"]
    staging = re.search(r'staging="([^"]+)"', step["run"])
    assert staging
    assert staging[1].endswith(":${ARCH_TAG}-${COMMIT}")
    assert "/staging/" in staging[1]


def test_the_bake_file_comes_from_buildmatrix_images() -> None:
    """The build step bakes what `buildmatrix images --dry-run` wrote: the matrix's own plan."""
    steps = _steps("build-images.yml", "image")
    planned = next(s for s in steps if "args=(images" in s.get("run", ""))
    for flag in ("--split", "--engine buildx", "--dry-run", "--format json", "--push"):
        assert flag in planned["run"]
    assert '> "${RUNNER_TEMP}/images-plan.json"' in planned["run"]
    build = next(s for s in steps if "docker buildx bake" in s.get("run", ""))
    assert "jq -r .bake_file" in build["run"]


def test_per_arch_images_are_verified_by_digest_before_the_merge() -> None:
    steps = _steps("merge-images.yml", "manifest")
    scripts = [s.get("run", "") for s in steps]
    verify = [i for i, s in enumerate(scripts) if re.search(r"\bbuildmatrix verify\b", s)]
    merge = [i for i, s in enumerate(scripts) if "docker buildx imagetools create" in s]
    assert len(verify) == 1
    assert len(merge) == 1
    assert verify[0] < merge[0]
    assert 'images+=(--image "docker://$(cat "${file}")")' in scripts[verify[0]]
    assert '--release "${RELEASE}"' in scripts[verify[0]]
    # What is verified is what is merged: the same digest files, checked to be
    # this image's staging repository by digest, before either step.
    check = next(i for i, s in enumerate(scripts) if "does not name" in s)
    assert check < verify[0]
    assert "@sha256:[0-9a-f]{64}$" in scripts[check]
    assert steps[verify[0]]["env"]["DIGESTS"] == steps[merge[0]]["env"]["DIGESTS"]


def test_image_jobs_free_disk_first_and_the_readme_states_the_need() -> None:
    steps = _steps("build-images.yml", "image")
    free = steps[0]
    assert "Free disk space" in free["name"]
    assert free["if"] == "runner.environment == 'github-hosted'"  # never on a self-hosted runner
    assert "sudo rm -rf" in free["run"]
    assert "df -h /" in free["run"]
    needed = free["env"]["NEEDED_GB"]
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"\b{needed} GB\b", readme), "README must state the disk an image build needs"
    assert f"{needed} GB" in (REPO_ROOT / "matrix.toml").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# Every job: timeouts, artifact retention, current actions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_every_job_has_a_timeout(path: Path) -> None:
    for name, job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].items():
        if "uses" in job:  # a reusable-workflow call: the called workflow's jobs carry theirs
            called = _load(LOCAL_WORKFLOW.match(job["uses"])["file"])  # type: ignore[index]
            assert all("timeout-minutes" in j for j in called["jobs"].values())
            continue
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int), f"{path.name}: {name} has no timeout"
        assert 0 < timeout <= 360, f"{path.name}: {name}: timeout-minutes {timeout}"


def test_merge_and_publish_inputs_outlive_a_rerun_window() -> None:
    uploads = [
        step["with"]
        for name in ("build-wheels.yml", "build-images.yml", "release.yml")
        for job in _load(name)["jobs"].values()
        for step in job.get("steps", [])
        if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    assert len(uploads) == 3  # wheels, digests, sdists
    for upload in uploads:
        # GitHub lets a run be re-run for 30 days; one-day artifacts broke a later merge.
        assert upload["retention-days"] >= 30, upload
        assert upload["overwrite"] is True  # a re-run job replaces its own artifact


# The first major release of each JavaScript action that runs on Node 24.
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "docker/setup-buildx-action": 4,
    "docker/login-action": 4,
}


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_javascript_actions_are_node24_releases(path: Path) -> None:
    seen = 0
    for match in re.finditer(r"uses: ([\w.-]+/[\w.-]+)@[0-9a-f]{40} # v(\d+)\.", path.read_text("utf-8")):
        action, major = match[1], int(match[2])
        if action in NODE24_MAJORS:
            seen += 1
            assert major >= NODE24_MAJORS[action], f"{action} v{major} runs on Node 20"
    assert seen


def test_the_same_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text("utf-8")
        for match in re.finditer(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v[\d.]+)", text):
            pins.setdefault(match[1], set()).add(f"{match[2]} {match[3]}")
    assert {action: len(versions) for action, versions in pins.items() if len(versions) > 1} == {}


# ---------------------------------------------------------------------------
# The container tests on a hosted runner: through sudo, explicitly
# ---------------------------------------------------------------------------


def test_pr_container_tests_run_their_privileged_parts_through_sudo() -> None:
    job = _load("pr.yml")["jobs"]["tests"]
    scripts = [s.get("run", "") for s in job["steps"]]
    unit = scripts.index('nox -s tests -- -m "not container"')
    base = scripts.index("python tests/support/container_base.py")
    container = next(i for i, s in enumerate(scripts) if "-m container" in s)
    assert unit < base < container
    # The unit tests and the base's unprivileged parts run as the runner's user...
    assert not scripts[unit].startswith("sudo")
    assert not scripts[base].startswith("sudo")
    # ...the container tests as root, explicitly, keeping this job's PATH and cache.
    assert scripts[container].startswith('sudo --non-interactive env "PATH=${PATH}"')
    assert '"BUILDMATRIX_CACHE_DIR=${BUILDMATRIX_CACHE_DIR}"' in scripts[container]
    # Both find the same base: the user makes it, root reuses it.
    cache = {job["steps"][i]["env"]["BUILDMATRIX_CACHE_DIR"] for i in (base, container)}
    assert cache == {"${{ runner.temp }}/buildmatrix-cache"}


# ---------------------------------------------------------------------------
# sdists: the release workflow's step, run for real
# ---------------------------------------------------------------------------


@pytest.mark.network  # `python -m build` fetches setuptools into its isolated build env
def test_the_sdists_step_builds_one_sdist_per_package_with_its_release_inside(tmp_path: Path) -> None:
    import tarfile

    from buildmatrix.loader import load_matrix

    step = next(s for s in _steps("release.yml", "sdists") if '"-m", "build", "--sdist"' in s.get("run", ""))
    assert step["env"]["RELEASES"] == "${{ needs.plan.outputs.releases }}"
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO_ROOT / "matrix.toml", checkout)
    shutil.copytree(REPO_ROOT / "examples", checkout / "examples")
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "RELEASES": '["v0.7.1"]',
    }
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    matrix = load_matrix(REPO_ROOT / "matrix.toml")
    sdists = sorted((checkout / "sdist").glob("*.tar.gz"))
    expected = sorted(f"{str(w.name).replace('-', '_')}-0.7.1.tar.gz" for w in matrix.wheels)
    assert [p.name for p in sdists] == expected
    for sdist in sdists:
        root = sdist.name.removesuffix(".tar.gz")
        with tarfile.open(sdist) as archive:
            info = json.load(archive.extractfile(f"{root}/.buildmatrix/build.json"))  # type: ignore[arg-type]
            pkg_info = archive.extractfile(f"{root}/PKG-INFO").read().decode()  # type: ignore[union-attr]
        assert (info["release"], info["version"]) == ("v0.7.1", "0.7.1")
        assert "\nVersion: 0.7.1\n" in pkg_info
        if info["package"] == "ai-dynamo":
            assert "Requires-Dist: ai-dynamo-runtime==0.7.1" in pkg_info
    # The source folders are untouched: the build.json went into a staged copy.
    assert not list((checkout / "examples").rglob("build.json"))
