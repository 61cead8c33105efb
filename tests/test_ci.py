"""CI job matrices, sharding at 256, and the workflows that consume them."""

from __future__ import annotations

import dataclasses
import json
import re
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
    assert re.search(r"\bbuildmatrix ci\b", steps[0]["run"])
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
