"""buildmatrix.wheels.local: what the local backend cannot build, said up front."""

from __future__ import annotations

from pathlib import Path

from buildmatrix.expand import TargetKind, expand
from buildmatrix.model import Matrix
from buildmatrix.wheels.host import Host
from buildmatrix.wheels.jobs import Job, Unbuildable
from buildmatrix.wheels.local import LocalBackend
from tests.support.wheelbuilds import other_arch


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
