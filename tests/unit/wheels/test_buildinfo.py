"""buildmatrix.wheels.buildinfo: metadata generated from the release pins, checked on a built wheel."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from buildmatrix.model import Matrix
from buildmatrix.wheels.buildinfo import build_info, metadata_problems


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
