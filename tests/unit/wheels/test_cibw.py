"""buildmatrix.wheels.cibw: cibuildwheel's options for the real matrix, checked by cibuildwheel itself,
and one call per package and arch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from buildmatrix.expand import TargetKind, expand
from buildmatrix.model import Matrix
from buildmatrix.wheels.cibw import CibuildwheelBackend, cibuildwheel_options
from buildmatrix.wheels.host import Host
from buildmatrix.wheels.jobs import Job, Unbuildable
from tests.support.wheelbuilds import other_arch


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
