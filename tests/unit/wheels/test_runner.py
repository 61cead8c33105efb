"""buildmatrix.wheels.runner: expected tags and the backend chosen from the container engine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from buildmatrix.expand import TargetKind, expand
from buildmatrix.model import Matrix
from buildmatrix.wheels.cibw import CibuildwheelBackend
from buildmatrix.wheels.host import Host
from buildmatrix.wheels.local import LocalBackend
from buildmatrix.wheels.runner import expected_tag


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
