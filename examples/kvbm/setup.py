"""The C extension, built per CPython version; the version comes from .buildmatrix/build.json."""

import json
from pathlib import Path

from setuptools import Extension, setup

BUILD_FILE = Path(__file__).resolve().parent / ".buildmatrix" / "build.json"


def build_info() -> dict:
    try:
        return json.loads(BUILD_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(
            f"{BUILD_FILE} is missing: build this package with `buildmatrix wheels`, "
            "which writes the release's version there"
        ) from None


setup(
    version=build_info()["version"],
    ext_modules=[
        Extension(
            "kvbm._pool",
            sources=["src/kvbm/_pool.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
        )
    ],
)
