"""buildmatrix._files: generated files honour the umask."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import MATRIX_PATH, Result


def test_generated_files_honour_the_umask(cli: Callable[..., Result], tmp_path: Path) -> None:
    from buildmatrix._files import write_text_atomic

    for mask, mode in ((0o022, 0o644), (0o027, 0o640), (0o077, 0o600)):
        previous = os.umask(mask)
        try:
            page = tmp_path / f"page-{mask:o}.md"
            assert cli("docs", "--matrix", MATRIX_PATH, "--out", page).code == 0
            write_text_atomic(tmp_path / f"manifest-{mask:o}.json", "{}\n")
        finally:
            os.umask(previous)
        assert page.stat().st_mode & 0o777 == mode
        assert (tmp_path / f"manifest-{mask:o}.json").stat().st_mode & 0o777 == mode
