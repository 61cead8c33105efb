"""buildmatrix.ui: wide tables fold into records at 80 columns, not mid-word."""

from __future__ import annotations

import os


def test_wide_tables_fold_into_records_not_mid_word() -> None:
    from rich.console import Console

    from buildmatrix.cli import ui

    wheel = "ai_dynamo_runtime-0.8.0.dev0-cp310-abi3-manylinux_2_28_x86_64.whl"
    target = "wheel:ai-dynamo-runtime:main:cp310-abi3:x86_64"
    table = ui.table("wheels", ["target", "status", "wheel"], [[target, "built", wheel]])
    narrow = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: PTH123, SIM115
    narrow.print(table)
    text = narrow.export_text()
    assert wheel in text
    assert target in text
    wide = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: PTH123, SIM115
    wide.print(table)
    assert "┃ target" in wide.export_text()  # a real table where it fits
