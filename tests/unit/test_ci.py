"""buildmatrix.ci: the job matrices, sharding at 256, runners from the matrix, who may publish."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from buildmatrix import ci
from buildmatrix.errors import UsageError
from buildmatrix.expand import expand
from buildmatrix.model import Matrix, Release
from tests.conftest import REPO_ROOT, Result
from tests.support.workflows import RUNNER_TABLE, _matrix_with


def _many_releases(matrix: Matrix, count: int) -> Matrix:
    """The real matrix with ``count`` released copies of v0.7.1 (v1.0.0, v1.0.1, ...)."""
    base = matrix.find_release("v0.7.1")
    assert base is not None
    releases = tuple(
        dataclasses.replace(base, name=f"v1.0.{n}", display=f"v1.0.{n}", version=Version(f"1.0.{n}"))
        for n in range(count)
    )
    return dataclasses.replace(matrix, releases=releases)


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


def test_outputs_over_githubs_1mb_per_job_are_refused(real_matrix: Matrix) -> None:
    matrix = _many_releases(real_matrix, 400)  # 4,400 jobs: ~1.8 MB of matrices
    with pytest.raises(UsageError, match=r"over GitHub's 1000000 bytes of outputs per job"):
        ci.pipeline_outputs(expand(matrix), matrix.releases)


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
