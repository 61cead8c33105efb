"""Metadata from .buildmatrix/build.json, which `buildmatrix wheels` writes for each release.

The extras and the runtime requirement are generated from matrix.toml's pins,
so the framework versions are never typed by hand in this package.
"""

import json
from pathlib import Path

from setuptools import setup

BUILD_FILE = Path(__file__).resolve().parent / ".buildmatrix" / "build.json"


def build_info() -> dict:
    try:
        return json.loads(BUILD_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(
            f"{BUILD_FILE} is missing: build this package with `buildmatrix wheels`, "
            "which generates its version, runtime requirement and framework extras"
        ) from None


info = build_info()
setup(
    version=info["version"],
    install_requires=info["dependencies"],
    extras_require=info["optional_dependencies"],
)
