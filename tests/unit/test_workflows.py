"""The GitHub workflows in .github/workflows consume the plan as buildmatrix.ci produces it: matrix
expressions, called workflows, gates, hygiene, flags the CLI has, runners, publishing guards,
image digests, timeouts, pinned actions, and the PR container path through sudo.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildmatrix import ci
from buildmatrix.expand import expand
from tests.conftest import REPO_ROOT
from tests.support.workflows import WORKFLOWS, _load, _steps

# `.github/workflows/build-wheels.yml` as the self-repository or workspace-relative form.
LOCAL_WORKFLOW = re.compile(r"^(?:\$|\.)/\.github/workflows/(?P<file>[\w.-]+\.ya?ml)$")


SHA_PIN = re.compile(r"^\s*-?\s*uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


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


@pytest.mark.parametrize(("name", "job"), [("build-wheels.yml", "wheel"), ("build-images.yml", "image")])
def test_build_jobs_run_on_the_planned_runner(name: str, job: str) -> None:
    assert _load(name)["jobs"][job]["runs-on"] == "${{ matrix.runner }}"


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


# The first major release of each JavaScript action that runs on Node 24.
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "docker/setup-buildx-action": 4,
    "docker/login-action": 4,
}
