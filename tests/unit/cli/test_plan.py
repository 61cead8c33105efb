"""buildmatrix plan on the command line: v0.7.1's images in JSON, the github format (golden),
unknown framework, arch and format.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import Result


def test_v071_images_carry_the_reference_pins_and_cuda(cli: Callable[..., Result]) -> None:
    result = cli("plan", "--release", "v0.7.1", "--kind", "image", "--format", "json")
    assert result.code == 0, result.err
    images = {(t["framework"], t["platform"]): t for t in json.loads(result.out)}
    assert set(images) == {
        (fw, platform) for fw in ("vllm", "sglang", "trtllm") for platform in ("linux/amd64", "linux/arm64")
    }
    for platform in ("linux/amd64", "linux/arm64"):
        assert images["vllm", platform]["pins"] == {"vllm": "0.11.0", "nixl": "0.7.1"}
        assert images["sglang", platform]["pins"] == {"sglang": "0.5.3.post4", "nixl": "0.7.1"}
        assert images["trtllm", platform]["pins"] == {"tensorrt-llm": "1.2.0rc3", "nixl": "0.7.1"}
        assert images["vllm", platform]["cuda"] == "12.8"
        assert images["sglang", platform]["cuda"] == "12.8"
        assert images["trtllm", platform]["cuda"] == "13.0"
    amd64 = images["vllm", "linux/amd64"]
    assert amd64["id"] == "image:vllm:v0.7.1:cuda12.8:linux/amd64"
    assert (amd64["kind"], amd64["release"], amd64["arch"], amd64["python"]) == (
        "image",
        "v0.7.1",
        "x86_64",
        "3.12",
    )


def test_github_format_matches_golden(cli: Callable[..., Result], golden: Callable[[str, str], None]) -> None:
    result = cli("plan", "--release", "main", "--format", "github")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert list(data) == ["include"]
    assert {job["runner"] for job in data["include"]} == {"ubuntu-24.04", "ubuntu-24.04-arm"}
    golden("plan-main-github.json", result.out)


def test_unknown_framework_and_arch_exit_2(cli: Callable[..., Result]) -> None:
    result = cli("plan", "--framework", "vlm")
    assert result.code == 2
    assert "unknown framework 'vlm' (did you mean 'vllm'?)" in result.err
    assert "sglang, trtllm, vllm" in result.err
    assert cli("plan", "--arch", "arm64").code == 2
    assert cli("plan", "--format", "yaml").code == 2
