"""matrix.toml loading: the real matrix reads as the reference says, and bad ones exit 2.

Each bad matrix is the real matrix.toml with one edit, so every case also proves
that the rest of the file is fine and the message points at the edited place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version

from buildmatrix.errors import MatrixError, UsageError
from buildmatrix.loader import load_matrix, parse_matrix, select_releases
from buildmatrix.model import Matrix, ReleaseStatus, Status
from tests.conftest import MATRIX_PATH, Result

REAL = MATRIX_PATH.read_text(encoding="utf-8")


def test_real_matrix_holds_every_release_column_of_the_reference(real_matrix: Matrix) -> None:
    pins = {r.name: {str(k): str(v) for k, v in r.pins.items()} for r in real_matrix.releases}
    assert pins == {
        "main": {"sglang": "0.5.6", "tensorrt-llm": "1.2.0rc5", "vllm": "0.12.0", "nixl": "0.8.0"},
        "v0.8.0": {"sglang": "0.5.6.post1", "tensorrt-llm": "1.2.0rc6", "vllm": "0.12.0", "nixl": "0.8.0"},
        "v0.7.1": {"sglang": "0.5.3.post4", "tensorrt-llm": "1.2.0rc3", "vllm": "0.11.0", "nixl": "0.7.1"},
        "v0.7.0.post1": {
            "sglang": "0.5.3.post4",
            "tensorrt-llm": "1.2.0rc3",
            "vllm": "0.11.0",
            "nixl": "0.7.1",
        },
        "v0.7.0": {"sglang": "0.5.3.post4", "tensorrt-llm": "1.2.0rc2", "vllm": "0.11.0", "nixl": "0.7.1"},
    }
    assert [r.status for r in real_matrix.releases] == [
        ReleaseStatus.DEVELOPMENT,
        ReleaseStatus.UNRELEASED,
        ReleaseStatus.RELEASED,
        ReleaseStatus.RELEASED,
        ReleaseStatus.RELEASED,
    ]


def test_cuda_is_stated_for_071_and_inherited_explicitly_elsewhere(real_matrix: Matrix) -> None:
    v071 = real_matrix.find_release("v0.7.1")
    assert v071 is not None
    assert v071.cuda == {"sglang": Version("12.8"), "trtllm": Version("13.0"), "vllm": Version("12.8")}
    assert v071.cuda_inherited_from is None
    for release in real_matrix.releases:
        if release is not v071:
            assert release.cuda_inherited_from == "v0.7.1"
            assert release.cuda == v071.cuda


def test_hardware_platform_and_runtime_tables(real_matrix: Matrix) -> None:
    assert [(a.name, a.platform, a.display) for a in real_matrix.archs] == [
        ("x86_64", "linux/amd64", "x86_64"),
        ("aarch64", "linux/arm64", "ARM64"),
    ]
    assert {g.name: g.sm for g in real_matrix.gpus} == {
        "Blackwell": ("10.0", "12.0"),
        "Hopper": ("9.0",),
        "Ada Lovelace": ("8.9",),
        "Ampere": ("8.0", "8.6"),
    }
    assert [(o.id, o.arch, o.status) for o in real_matrix.operating_systems] == [
        ("ubuntu-22.04", "x86_64", Status.SUPPORTED),
        ("ubuntu-24.04", "x86_64", Status.SUPPORTED),
        ("ubuntu-24.04", "aarch64", Status.SUPPORTED),
        ("centos-stream-9", "x86_64", Status.EXPERIMENTAL),
    ]
    runtime = {str(p.name): (str(p.version), str(p.glibc), p.cuda) for p in real_matrix.runtime_packages}
    assert runtime == {
        "ai-dynamo": ("0.8.0", "2.28", None),
        "ai-dynamo-runtime": ("0.8.0", "2.28", None),
        "nixl": ("0.7.1", "2.27", Version("11.8")),
    }
    assert {w.name: (w.kind.value, w.abi3, w.python) for w in real_matrix.wheels} == {
        "ai-dynamo": ("pure", False, ("3.10", "3.11", "3.12")),
        "ai-dynamo-runtime": ("native", True, ("3.10", "3.11", "3.12")),
        "kvbm": ("native", False, ("3.12",)),
    }
    assert {r.id for r in real_matrix.rules} == {
        "trtllm-not-python-3.11",
        "kvbm-python-3.12-only",
        "python-3.12-ubuntu-24.04-only",
    }


def test_release_names_accept_the_bare_version(real_matrix: Matrix) -> None:
    assert [r.name for r in select_releases(real_matrix, ["0.7.1", "main"])] == ["main", "v0.7.1"]
    with pytest.raises(UsageError, match=r"unknown release 'v0\.7\.2' \(did you mean 'v0\.7\.1'\?\)"):
        select_releases(real_matrix, ["v0.7.2"])


def test_framework_requirements_are_generated_from_pins(real_matrix: Matrix) -> None:
    main = real_matrix.find_release("main")
    assert main is not None
    vllm = [str(r) for r in real_matrix.framework("vllm").requirements(main.pins)]
    assert vllm == ["vllm[flashinfer]==0.12.0", "nixl[cu12]<=0.8.0"]


def _edit(old: str, new: str, count: int = 1) -> str:
    assert REAL.count(old) >= count, f"fixture edit target not found: {old!r}"
    return REAL.replace(old, new, count)


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


# (case id, matrix text, substrings the message must contain)
BAD_MATRICES: list[tuple[str, str, list[str]]] = [
    ("empty file", "", ["the matrix is empty"]),
    ("toml syntax error", _edit('name = "Dynamo"', 'name = "Dynamo'), ["invalid TOML", "line 14"]),
    ("unknown root key", _edit("schema = 1", "schema = 1\nrelases = []"), ["'relases'", "did you mean"]),
    (
        "unknown release key",
        _edit(
            'status = "released"\nversion = "0.7.1"', 'status = "released"\nversion = "0.7.1"\nstatuss = "x"'
        ),
        ["release[2].statuss"],
    ),
    ("unsupported schema", _edit("schema = 1", "schema = 7"), ["schema", "unsupported schema 7"]),
    (
        "bad pin version",
        _edit('vllm = "0.11.0", nixl = "0.7.1" }', 'vllm = "0.11.x", nixl = "0.7.1" }'),
        [
            "release[2].pins.vllm",
            "'0.11.x' is not a valid PEP 440 version",
        ],
    ),
    (
        "bad release version",
        _edit('status = "released"\nversion = "0.7.1"', 'status = "released"\nversion = "seven"'),
        ["release[2].version", "PEP 440"],
    ),
    (
        "unknown pin",
        _edit('nixl = "0.8.0" }', 'nixl = "0.8.0", vlm = "1.0" }'),
        ["pins.vlm", "unknown dependency"],
    ),
    (
        "missing pin",
        _edit('pins = { sglang = "0.5.6", ', "pins = { "),
        ["release[0].pins", "missing pin for 'sglang'"],
    ),
    ("duplicate release", _edit('name = "v0.7.0"\n', 'name = "v0.7.1"\n'), ["duplicate release 'v0.7.1'"]),
    (
        "duplicate release spelled bare",
        _edit('name = "v0.7.0"\n', 'name = "0.7.1"\n'),
        ["duplicate release '0.7.1'"],
    ),
    (
        "unknown framework in rule",
        _edit('when = { framework = ["trtllm"] }', 'when = { framework = ["trt"] }'),
        [
            "rule[0].when.framework",
            "unknown framework 'trt'",
        ],
    ),
    (
        "unknown package in rule",
        _edit('when = { package = ["kvbm"] }', 'when = { package = ["kvbn"] }'),
        [
            "unknown package 'kvbn'",
            "did you mean 'kvbm'",
        ],
    ),
    (
        "unknown rule attribute",
        _edit('forbid = { python = ["3.11"] }', 'forbid = { pyhton = ["3.11"] }'),
        [
            "unknown rule attribute 'pyhton'",
        ],
    ),
    (
        "rule without effect",
        _edit('forbid = { python = ["3.11"] }\n', ""),
        ["rule[0]", "needs `allow` or `forbid`"],
    ),
    (
        "bad python in rule",
        _edit('forbid = { python = ["3.11"] }', 'forbid = { python = ["3.11.2"] }'),
        [
            "'3.11.2' is not a Python version",
        ],
    ),
    (
        "latest base image",
        _edit("cuda:13.0.0-runtime-ubuntu24.04", "cuda:latest"),
        [
            "cuda_base_images.13.0",
            "`latest` is not a pin",
        ],
    ),
    (
        "untagged manylinux image",
        _edit(
            "manylinux_2_28_aarch64@sha256:a3e02308c822fb6ce0d12248b0c941817ba5e1a1bc9e7bb5929f29c50eaa40a9",
            "manylinux_2_28_aarch64",
        ),
        ["manylinux.images.aarch64", "no tag or digest"],
    ),
    (
        "truncated digest",
        _edit("@sha256:a3e02308c822fb6ce0d12248b0c941817ba5e1a1bc9e7bb5929f29c50eaa40a9", "@sha256:a3e02308"),
        ["manylinux.images.aarch64", "sha256:<64 lowercase hex digits>"],
    ),
    (
        "injection in image name",
        _edit('name = "vllm-runtime"', 'name = "vllm-runtime; rm -rf /"'),
        [
            "image.vllm.name",
            "may only contain",
        ],
    ),
    (
        "injection in pin",
        _edit('vllm = "0.12.0", nixl = "0.8.0" }\n# The', 'vllm = "0.12.0$(id)", nixl = "0.8.0" }\n# The'),
        [
            "release[0].pins.vllm",
            "PEP 440",
        ],
    ),
    (
        "injection in image ref",
        _edit("cuda:12.8.1-runtime-ubuntu24.04", "cuda:12.8.1`id`"),
        ["cuda_base_images.12.8"],
    ),
    (
        "path escaping the repo",
        _edit('source = "examples/kvbm"', 'source = "../../etc"'),
        [
            "wheel.kvbm.source",
            "no '..'",
        ],
    ),
    (
        "absolute dockerfile",
        _edit('dockerfile = "containers/Dockerfile"', 'dockerfile = "/etc/passwd"'),
        [
            "image.vllm.dockerfile",
        ],
    ),
    (
        "wrong type for python list",
        _edit('python = ["3.12"]\narch', 'python = "3.12"\narch'),
        [
            "wheel.kvbm.python",
            "expected an array, got a string",
        ],
    ),
    (
        "wrong type for abi3",
        _edit("abi3 = true", 'abi3 = "yes"'),
        ["wheel.ai-dynamo-runtime.abi3", "expected a boolean"],
    ),
    (
        "unknown arch in wheel",
        _edit('arch = ["x86_64", "aarch64"]\npolicy', 'arch = ["x86_64", "arm64"]\npolicy'),
        [
            "unknown arch 'arm64'",
        ],
    ),
    (
        "bad status",
        _edit('status = "Experimental"', 'status = "Beta"'),
        ["os[3].status", "unknown status 'Beta'"],
    ),
    ("bad release status", _edit('status = "unreleased"', 'status = "soon"'), ["release[1].status"]),
    (
        "planned date on a released release",
        _edit(
            'status = "released"\nversion = "0.7.1"',
            'status = "released"\nversion = "0.7.1"\nplanned = 2025-01-01',
        ),
        [
            "release[2].planned",
            "only an unreleased release",
        ],
    ),
    (
        "cuda inherit from unknown release",
        _edit('cuda = { inherit = "v0.7.1" }', 'cuda = { inherit = "v0.6.0" }'),
        [
            "release[0].cuda.inherit",
            "unknown release 'v0.6.0'",
        ],
    ),
    (
        "cuda inherit chain",
        _edit('cuda = { inherit = "v0.7.1" }', 'cuda = { inherit = "v0.8.0" }'),
        [
            "inherits its CUDA table too",
        ],
    ),
    (
        "cuda missing a framework",
        _edit('cuda = { sglang = "12.8", ', "cuda = { "),
        ["missing CUDA version for 'sglang'"],
    ),
    (
        "no base image for a cuda",
        _edit('"12.8" = "nvcr.io/nvidia/cuda:12.8.1-runtime-ubuntu24.04"\n', ""),
        [
            "no base image for CUDA 12.8",
        ],
    ),
    (
        "placeholder naming unknown pin",
        _edit('"vllm[flashinfer]=={vllm}"', '"vllm[flashinfer]=={vllmm}"'),
        [
            "framework.vllm.requires",
            "'vllmm'",
        ],
    ),
    (
        "placeholder with attribute access",
        _edit('"vllm[flashinfer]=={vllm}"', '"vllm=={vllm.__class__}"'),
        [
            "framework.vllm.requires",
        ],
    ),
    (
        "invalid requirement template",
        _edit('"tensorrt-llm=={tensorrt-llm}"', '"tensorrt-llm=={tensorrt-llm} ;;"'),
        [
            "framework.trtllm.requires",
            "invalid requirement",
        ],
    ),
    (
        "image requirement naming unknown pin",
        _edit('image_requires = ["nixl[cu13]=={nixl}"]', 'image_requires = ["nixl[cu13]=={nixll}"]'),
        ["framework.trtllm.image_requires", "'nixll'"],
    ),
    (
        "framework with unknown distribution",
        _edit('distribution = "vllm"', 'distribution = "vlm"'),
        [
            "framework.vllm.distribution",
            "did you mean 'vllm'",
        ],
    ),
    (
        "non-canonical dependency name",
        _edit("[dependency.tensorrt-llm]", "[dependency.TensorRT_LLM]"),
        [
            "dependency.TensorRT_LLM",
            "canonically",
        ],
    ),
    (
        "invalid distribution name",
        _edit('name = "nixl"\ndisplay', 'name = "-nixl-"\ndisplay'),
        ["runtime[2].name"],
    ),
    (
        "http source url",
        _edit('source = "https://github.com/ai-dynamo/dynamo"', 'source = "http://x y"'),
        [
            "project.source",
        ],
    ),
    (
        "meta package not pure",
        _edit('kind = "pure"', 'kind = "native"'),
        ["wheel.ai-dynamo.meta", "must be pure"],
    ),
    ("duplicate arch", _edit('name = "aarch64"', 'name = "x86_64"'), ["duplicate arch 'x86_64'"]),
    (
        "bad policy",
        _edit('policy = "manylinux_2_28"\nabi3 = false', 'policy = "manylinux2014x"\nabi3 = false'),
        [
            "wheel.kvbm.policy",
            "not a platform policy",
        ],
    ),
    (
        "bad external lib pattern",
        _edit('"libserdes*.so*"', '"libserdes*.so; id"'),
        ["wheel.kvbm.external_libs"],
    ),
]


@pytest.mark.parametrize(
    ("text", "needles"), [(t, n) for _, t, n in BAD_MATRICES], ids=[c for c, _, _ in BAD_MATRICES]
)
def test_bad_matrix_exits_2_naming_the_culprit(
    tmp_path: Path, cli: Callable[..., Result], text: str, needles: list[str]
) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text(text, encoding="utf-8")
    result = cli("plan", "--matrix", path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.err.startswith(f"buildmatrix: error: {path}")
    for needle in needles:
        assert needle in result.err, f"{needle!r} not in {result.err!r}"


def test_there_are_at_least_25_bad_matrices() -> None:
    assert len(BAD_MATRICES) >= 25
    assert len({case for case, _, _ in BAD_MATRICES}) == len(BAD_MATRICES)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        (
            'vllm = "0.11.0", nixl = "0.7.1" }\ncuda = { sglang',
            'vllm = "0.11.x", nixl = "0.7.1" }\ncuda = { sglang',
            "pins = {",
        ),
        ("abi3 = true", 'abi3 = "yes"', "abi3 ="),
        ('when = { framework = ["trtllm"] }', 'when = { framework = ["trt"] }', "when = {"),
        ('forbid = { python = ["3.11"] }', 'forbid = { python = ["3.11"] }\ncolour = "red"', "colour ="),
    ],
)
def test_errors_name_the_line(tmp_path: Path, old: str, new: str, needle: str) -> None:
    text = _edit(old, new)
    path = tmp_path / "matrix.toml"
    with pytest.raises(MatrixError) as caught:
        parse_matrix(text, path)
    expected_line = _line_of(text, new.rsplit("\n", maxsplit=1)[-1] if needle == "colour =" else new)
    assert caught.value.origin.line == expected_line, caught.value.message
    assert f"{path}:{expected_line}:" in caught.value.message


def test_missing_file_is_a_usage_error(tmp_path: Path, cli: Callable[..., Result]) -> None:
    result = cli("plan", "--matrix", tmp_path / "nope.toml")
    assert result.code == 2
    assert "matrix file not found" in result.err
    assert "nope.toml" in result.err


def test_load_matrix_reads_the_real_file() -> None:
    matrix = load_matrix(MATRIX_PATH)
    assert matrix.root == MATRIX_PATH.parent
    assert matrix.wheel("kvbm").source == MATRIX_PATH.parent / "examples" / "kvbm"
