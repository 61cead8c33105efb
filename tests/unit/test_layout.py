"""The test tree's own rule: tests/unit holds no container, network or slow test."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import INTEGRATION_ONLY, UNIT, misplaced_in_unit


@dataclass
class _Collected:
    """What the hook reads of a collected test: its node id, path and markers."""

    nodeid: str
    path: Path
    markers: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str) -> object | None:
        return name if name in self.markers else None


def test_a_marked_test_under_unit_is_refused_and_named() -> None:
    integration = UNIT.parent / "integration"
    items = [
        _Collected("tests/unit/test_a.py::test_fast", UNIT / "test_a.py"),
        _Collected("tests/unit/images/test_b.py::test_build", UNIT / "images" / "test_b.py", {"container"}),
        _Collected("tests/unit/test_c.py::test_pypi", UNIT / "test_c.py", {"network", "slow"}),
        _Collected(
            "tests/integration/test_d.py::test_build", integration / "test_d.py", {"container", "slow"}
        ),
    ]
    assert misplaced_in_unit(items) == [
        "tests/unit/images/test_b.py::test_build (container)",
        "tests/unit/test_c.py::test_pypi (network)",
        "tests/unit/test_c.py::test_pypi (slow)",
    ]


def test_no_unit_test_file_names_an_integration_marker() -> None:
    """Read from the source, independent of the hook and of any `-m` selection."""
    files = sorted(UNIT.rglob("*.py"))
    assert len(files) > 50  # the tree is where this test thinks it is
    named = {
        f"{path.relative_to(UNIT)}: mark.{node.attr}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and node.attr in INTEGRATION_ONLY
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
    }
    assert named == set(), "these belong in tests/integration"
