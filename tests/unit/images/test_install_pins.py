"""containers/install_pins.py, the framework stage's first step: bad pins stop it before pip runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

INSTALL_PINS = REPO_ROOT / "containers" / "install_pins.py"


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ("", "build arg PINS is missing or empty"),
        ("vllm[flashinfer]==0.12.0 nixl[cu12]==", "pin 'nixl[cu12]==' is not NAME[EXTRAS]==VERSION"),
        ("vllm[flashinfer]==0.12.0 nixl", "pin 'nixl' has no ==VERSION"),
        ("vllm==0.12.0 nixl>=0.8", "pin 'nixl>=0.8' is not exactly ==VERSION"),
        ("vllm==0.12.0 nixl==0.8.*", "pin 'nixl==0.8.*': '0.8.*' is not a version"),
        ("vllm==0.12.0 nixl==0.8.0;python_version>'3'", "is not exactly NAME[EXTRAS]==VERSION"),
        ("vllm==0.12.0 Vllm==0.11.0", "vllm is pinned twice"),
        ("vllm==0.12.0;rm$IFS-rf$IFS/", "is not NAME[EXTRAS]==VERSION"),
    ],
)
def test_install_pins_stops_before_pip_naming_the_pin(pins: str, message: str, tmp_path: Path) -> None:
    """The stage's first step (install_pins.py) refuses a missing, empty or malformed pin
    before pip or any index is touched; the container test shows it inside a real build."""
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    result = subprocess.run(
        [
            sys.executable, str(INSTALL_PINS),
            "--release", "main", "--framework", "vllm", "--cuda", "12.8", "--python", running,
            "--pins", pins, "--no-index", "1", "--find-links", str(tmp_path),
        ],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "pip install" not in result.stdout + result.stderr


def test_install_pins_names_a_missing_framework_arg(tmp_path: Path) -> None:
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    result = subprocess.run(
        [
            sys.executable, str(INSTALL_PINS),
            "--release", "main", "--framework", "", "--cuda", "12.8", "--python", running,
            "--pins", "vllm==0.12.0",
        ],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "build arg FRAMEWORK is missing" in result.stderr
