"""buildmatrix.verify.generated: the docs page and the image plan carry the matrix pins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from buildmatrix.verify.generated import check_docs_page, check_image_plan
from tests.support.ocifactory import GOOD_LABELS
from tests.support.verifying import MAIN_EXTRAS, _repo_with_meta_pyproject


def test_docs_page_in_sync_stale_and_missing(tmp_path: Path) -> None:
    from buildmatrix import docs

    path = _repo_with_meta_pyproject(tmp_path, MAIN_EXTRAS, "0.8.0.dev0")
    matrix = load_matrix(path)
    [missing] = check_docs_page(matrix)
    assert (missing.ok, missing.found) == (False, "(missing)")
    page = tmp_path / "docs" / "support-matrix.md"
    page.parent.mkdir()
    page.write_text(docs.render(matrix), encoding="utf-8")
    [fresh] = check_docs_page(matrix)
    assert fresh.ok
    # Someone bumps vLLM on the page by hand instead of in the matrix.
    text = page.read_text(encoding="utf-8")
    assert "0.12.0" in text
    page.write_text(text.replace("0.12.0", "0.12.1", 1), encoding="utf-8")
    [stale] = check_docs_page(matrix)
    assert not stale.ok
    assert stale.found == "1 stale lines"
    assert "0.12.1" in stale.detail


@dataclass(frozen=True)
class FakeBuild:
    """The fields of buildmatrix.images.plan.ImageBuild that verify reads."""

    name: str
    release: str
    framework: str
    args: Mapping[str, str]
    labels: Mapping[str, str]
    pins: Mapping[str, str]


def _planned(**changes: Any) -> FakeBuild:
    values: dict[str, Any] = {
        "name": "vllm-v0_7_1-cuda12",
        "release": "v0.7.1",
        "framework": "vllm",
        "args": {"FRAMEWORK": "vllm", "PINS": "vllm[flashinfer]==0.11.0 nixl[cu12]==0.7.1"},
        "labels": GOOD_LABELS,
        "pins": {"vllm": "0.11.0", "nixl": "0.7.1"},
    }
    values.update(changes)
    return FakeBuild(**values)


def test_image_plan_carries_the_pins(matrix: Matrix) -> None:
    checks = check_image_plan(matrix, builds=[_planned()])
    assert len(checks) == 2 * 3 + 2 + 2 + 1  # pins x (plan, arg, label), extras, labels, FRAMEWORK arg
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    wrong = _planned(
        args={"FRAMEWORK": "vllm", "PINS": "vllm==0.10.2 nixl[cu13]==0.7.1"},
        labels={**GOOD_LABELS, "org.buildmatrix.release": "v0.7.0"},
    )
    failed = [
        (c.name, c.detail.split(" (")[0], c.found)
        for c in check_image_plan(matrix, builds=[wrong])
        if not c.ok
    ]
    assert failed == [
        ("vllm", "build arg PINS", "0.10.2"),
        ("vllm", "build arg PINS extras", "(no extras)"),
        ("nixl", "build arg PINS extras", "cu13"),
        ("org.buildmatrix.release", "label", "v0.7.0"),
    ]
    # A hand-edited PINS (a pin dropped, one loosened, one twice) or FRAMEWORK is caught too.
    for args, name, found in [
        ({"FRAMEWORK": "vllm", "PINS": "vllm[flashinfer]==0.11.0"}, "nixl", "(missing)"),
        (
            {"FRAMEWORK": "vllm", "PINS": "vllm[flashinfer]>=0.11.0 nixl[cu12]==0.7.1"},
            "vllm",
            "vllm[flashinfer]>=0.11.0",
        ),
        (
            {"FRAMEWORK": "vllm", "PINS": "vllm[flashinfer]==0.11.0 nixl[cu12]==0.7.1 nixl[cu12]==0.8.0"},
            "nixl",
            "0.7.1 and 0.8.0",
        ),
        (
            {"FRAMEWORK": "sglang", "PINS": "vllm[flashinfer]==0.11.0 nixl[cu12]==0.7.1"},
            "FRAMEWORK",
            "sglang",
        ),
    ]:
        [bad] = [c for c in check_image_plan(matrix, builds=[_planned(args=args)]) if not c.ok]
        assert (bad.name, bad.found) == (name, found)
    [unknown] = check_image_plan(matrix, builds=[_planned(release="v9.9")])
    assert not unknown.ok


def test_the_real_image_plan_agrees_when_present(matrix: Matrix) -> None:
    """With the images command in the checkout, its plan for every release carries the pins."""
    try:
        import buildmatrix.images.plan  # noqa: F401
    except ModuleNotFoundError:
        assert check_image_plan(matrix) == []
        return
    checks = check_image_plan(matrix)
    assert len(checks) >= len(matrix.releases) * len(matrix.frameworks) * 8
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
