"""Expansion: counts per release, rules hold, ids unique and stable, and random matrices."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from buildmatrix.expand import ImageTarget, Target, TargetKind, expand
from buildmatrix.loader import parse_matrix
from buildmatrix.model import Matrix
from tests.conftest import MATRIX_PATH


def test_counts_per_release(real_matrix: Matrix) -> None:
    plan = expand(real_matrix)
    per_release = {r.name: 0 for r in real_matrix.releases}
    for target in plan:
        per_release[target.release.name] += 1
    # ai-dynamo (pure, once) + ai-dynamo-runtime (abi3, 2 arches) + kvbm (3.12, 2 arches)
    # + 3 frameworks x 2 arches of images.
    assert per_release == dict.fromkeys(per_release, 1 + 2 + 2 + 6)
    assert len(plan.wheels()) == 25
    assert len(plan.images()) == 30


def test_ids_are_unique_readable_and_stable(real_matrix: Matrix) -> None:
    first = [t.id for t in expand(real_matrix)]
    assert len(set(first)) == len(first)
    assert first == [t.id for t in expand(real_matrix)]
    assert "image:vllm:v0.7.1:cuda12.8:linux/amd64" in first
    assert "image:trtllm:v0.7.1:cuda13.0:linux/arm64" in first
    assert "wheel:ai-dynamo-runtime:main:cp310-abi3:aarch64" in first
    assert "wheel:kvbm:v0.7.0:cp312:x86_64" in first


def test_wheel_targets_carry_package_python_and_policy(real_matrix: Matrix) -> None:
    kvbm = [t for t in expand(real_matrix, kind=TargetKind.WHEEL) if t.package and t.package.name == "kvbm"]
    assert {t.python for t in kvbm} == {"3.12"}
    data = kvbm[0].to_json()
    assert data["package"] == "kvbm"
    assert data["policy"] == "manylinux_2_28"
    assert data["platform_tag"] == "manylinux_2_28_x86_64"
    assert kvbm[0].build_identifier == "cp312-manylinux_x86_64"


def test_filters_select_without_reordering(real_matrix: Matrix) -> None:
    everything = [t.id for t in expand(real_matrix)]
    arm = [t.id for t in expand(real_matrix, arch="aarch64")]
    assert arm == [i for i in everything if i.endswith((":aarch64", "linux/arm64"))]
    vllm = expand(real_matrix, framework="vllm")
    assert {t.kind for t in vllm} == {TargetKind.IMAGE}
    assert len(vllm) == 10


def test_rules_exclude_and_say_which_rule(tmp_path: Path) -> None:
    # Widen kvbm and the trtllm image to Python 3.11: both rules must now exclude targets.
    text = MATRIX_PATH.read_text()
    text = text.replace('python = ["3.12"]\narch', 'python = ["3.11", "3.12"]\narch')
    trtllm_image = (
        'name = "tensorrtllm-runtime"\ndockerfile = "containers/Dockerfile"\ntarget = "framework-runtime"\n'
    )
    text = text.replace(trtllm_image + 'python = "3.12"', trtllm_image + 'python = "3.11"')
    matrix = parse_matrix(text, tmp_path / "matrix.toml")
    plan = expand(matrix, releases=matrix.releases[:1])
    reasons = {(e.target.id, e.rule.id) for e in plan.excluded}
    assert ("wheel:kvbm:main:cp311:x86_64", "kvbm-python-3.12-only") in reasons
    assert ("image:trtllm:main:cuda13.0:linux/amd64", "trtllm-not-python-3.11") in reasons
    assert not any(isinstance(t, ImageTarget) and t.framework.name == "trtllm" for t in plan)


FRAMEWORKS = ["alpha", "beta", "gamma"]


PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


ARCHS = ["x86_64", "aarch64"]


@st.composite
def matrices(draw: st.DrawFn) -> str:
    frameworks = draw(st.lists(st.sampled_from(FRAMEWORKS), min_size=1, max_size=3, unique=True))
    n_releases = draw(st.integers(1, 4))
    lines = ["schema = 1", "[project]", 'name = "P"', 'source = "https://example.org/p"']
    for arch, platform in zip(ARCHS, ["linux/amd64", "linux/arm64"], strict=True):
        lines += ["[[arch]]", f'name = "{arch}"', f'platform = "{platform}"', 'status = "Supported"']
    lines += ["[[gpu]]", 'name = "G"', 'display = "G"', 'sm = ["9.0"]', 'status = "Supported"']
    for os_id in ("os-a", "os-b"):
        lines += [
            "[[os]]",
            f'id = "{os_id}"',
            'name = "O"',
            'version = "1"',
            'arch = "x86_64"',
            'status = "Supported"',
        ]
    lines += ["[[runtime]]", 'name = "p"', 'version = "1.0"', 'glibc = "2.28"']
    for fw in frameworks:
        lines += [f"[dependency.{fw}-dist]", f'display = "{fw}"']
    for fw in frameworks:
        lines += [
            f"[framework.{fw}]",
            f'display = "{fw}"',
            f'distribution = "{fw}-dist"',
            f'extra = "{fw}"',
            f'requires = ["{fw}-dist=={{{fw}-dist}}"]',
        ]
    for index in range(n_releases):
        pins = ", ".join(f'{fw}-dist = "{draw(st.integers(0, 9))}.{index}"' for fw in frameworks)
        cuda = ", ".join(f'{fw} = "12.{draw(st.integers(0, 1))}"' for fw in frameworks)
        lines += ["[[release]]", f'name = "v{index}.0"', f'version = "{index}.0"', 'status = "released"']
        lines += [f"pins = {{ {pins} }}", f"cuda = {{ {cuda} }}"]
    lines += ["[manylinux]", 'policy = "manylinux_2_28"']
    lines += ['images = { x86_64 = "q/m:1", aarch64 = "q/m:1" }']
    for name in ("pkg-a", "pkg-b"):
        pythons = sorted(
            draw(st.lists(st.sampled_from(PYTHONS), min_size=1, unique=True)), key=lambda v: int(v[2:])
        )
        archs = draw(st.lists(st.sampled_from(ARCHS), min_size=1, unique=True))
        lines += [
            f"[wheel.{name}]",
            'kind = "native"',
            f'source = "{name}"',
            f"python = {json.dumps(pythons)}",
        ]
        lines += [f"arch = {json.dumps(archs)}", f"abi3 = {str(draw(st.booleans())).lower()}"]
    lines += ["[cuda_base_images]", '"12.0" = "c/u:12.0"', '"12.1" = "c/u:12.1"']
    for fw in frameworks:
        archs = draw(st.lists(st.sampled_from(ARCHS), min_size=1, unique=True))
        lines += [f"[image.{fw}]", f'name = "{fw}-runtime"', 'dockerfile = "D"', f'target = "{fw}"']
        lines += [
            f'python = "{draw(st.sampled_from(PYTHONS))}"',
            f'os = "{draw(st.sampled_from(["os-a", "os-b"]))}"',
        ]
        lines += [f"arch = {json.dumps(archs)}"]
    attributes = {
        "framework": frameworks,
        "package": ["pkg-a", "pkg-b"],
        "python": PYTHONS,
        "arch": ARCHS,
        "os": ["os-a", "os-b"],
        "kind": ["wheel", "image"],
    }
    for index in range(draw(st.integers(0, 4))):
        when_key, effect_key = draw(
            st.lists(st.sampled_from(sorted(attributes)), min_size=2, max_size=2, unique=True)
        )
        when = draw(st.lists(st.sampled_from(attributes[when_key]), min_size=1, unique=True))
        values = draw(st.lists(st.sampled_from(attributes[effect_key]), min_size=1, unique=True))
        effect = draw(st.sampled_from(["allow", "forbid"]))
        lines += ["[[rule]]", f'id = "r{index}"', f"when = {{ {when_key} = {json.dumps(when)} }}"]
        lines += [f"{effect} = {{ {effect_key} = {json.dumps(values)} }}", 'message = "m"']
    return "\n".join(lines) + "\n"


def _holds(rule_data: dict[str, object], target: Target) -> bool:
    """The rule semantics, restated independently of ``Rule.permits``."""
    attributes = target.attributes
    when = rule_data["when"]
    assert isinstance(when, dict)
    if any(attributes.get(k) not in v for k, v in when.items()):
        return True
    for key, values in rule_data.get("allow", {}).items():  # type: ignore[attr-defined]
        if key in attributes and attributes[key] not in values:
            return False
    return all(
        not (key in attributes and attributes[key] in values)
        for key, values in rule_data.get("forbid", {}).items()
    )  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(matrices())
def test_random_matrices_expand_deterministically_and_obey_every_rule(text: str) -> None:
    import tomllib

    matrix = parse_matrix(text, Path("/virtual/matrix.toml"))
    first = expand(matrix)
    second = expand(matrix)
    assert [t.id for t in first] == [t.id for t in second]
    ids = [t.id for t in first]
    assert len(set(ids)) == len(ids)
    rules = tomllib.loads(text).get("rule", [])
    for target in first:
        assert all(_holds(rule, target) for rule in rules), target.id
    for exclusion in first.excluded:
        assert not all(_holds(rule, exclusion.target) for rule in rules), exclusion.target.id
    # Nothing is lost: kept + excluded is every candidate combination.
    wheels = sum(len(w.arch) * (1 if w.abi3 else len(w.python)) for w in matrix.wheels)
    images = sum(len(i.arch) for i in matrix.images)
    assert len(first) + len(first.excluded) == len(matrix.releases) * (wheels + images)
