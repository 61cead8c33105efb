"""buildmatrix.wheels.sources: the source tree digest follows content, not build output."""

from __future__ import annotations

import shutil
from pathlib import Path

from buildmatrix.wheels.sources import read_source_tree
from tests.support.wheelbuilds import REPO


def test_source_tree_digest_follows_content_not_build_output(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    shutil.copytree(REPO / "examples" / "ai-dynamo", root)
    first = read_source_tree(root)
    assert "pyproject.toml" in first.files
    (root / "build" / "lib").mkdir(parents=True)
    (root / "build" / "lib" / "junk.py").write_text("x = 1\n")
    (root / "src" / "ai_dynamo" / "__pycache__").mkdir()
    (root / "src" / "ai_dynamo" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert read_source_tree(root).digest == first.digest
    (root / "src" / "ai_dynamo" / "__init__.py").write_text("# changed\n")
    assert read_source_tree(root).digest != first.digest
    # An output folder inside the package is neither hashed nor staged.
    (root / "my-out" / "logs").mkdir(parents=True)
    (root / "my-out" / "logs" / "x.log").write_text("log\n")
    assert (
        read_source_tree(root, exclude=(root / "my-out",)).digest
        == read_source_tree(root, exclude=(root / "my-out",)).digest
    )
    assert "my-out/logs/x.log" in read_source_tree(root).files
    assert "my-out/logs/x.log" not in read_source_tree(root, exclude=(root / "my-out",)).files
    shutil.rmtree(root / "my-out")
    staged = tmp_path / "staged"
    read_source_tree(root).stage(staged)
    assert not (staged / "build").exists()
    assert (staged / "src" / "ai_dynamo" / "__init__.py").read_text() == "# changed\n"
