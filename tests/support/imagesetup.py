"""What the images tests share: the real Dockerfile, fixed build options, a matrix copy to edit,
and the dry run's JSON.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildmatrix.images import (
    ImageOptions,
)
from tests.conftest import REPO_ROOT, Result

DOCKERFILE = REPO_ROOT / "containers" / "Dockerfile"


FIXED = ImageOptions(
    wheelhouse=Path("/nonexistent/wheelhouse"),  # independent of a wheelhouse/ `nox -s wheels` left
    created=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    revision="0123456789abcdef0123456789abcdef01234567",
)


Cli = Callable[..., Result]


def copy_matrix(tmp_path: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    """matrix.toml (edited) in tmp_path with a private copy of containers/."""
    text = edit((REPO_ROOT / "matrix.toml").read_text())
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "matrix.toml").write_text(text)
    shutil.copytree(REPO_ROOT / "containers", tmp_path / "containers")
    return tmp_path / "matrix.toml"


def dry_run_json(cli: Cli, *args: str | Path) -> dict[str, Any]:
    result = cli("images", *args, "--dry-run", "--format", "json")
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def _fields(options: ImageOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}
