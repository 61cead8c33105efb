"""The C extension, built against the stable ABI (Py_LIMITED_API 3.10) as one cp310-abi3 wheel.

The version comes from .buildmatrix/build.json, written by `buildmatrix wheels`
for the release being built; it is never typed here.
"""

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
            "ai_dynamo_runtime._blockhash",
            sources=["src/ai_dynamo_runtime/_blockhash.c"],
            define_macros=[("Py_LIMITED_API", "0x030A0000")],
            py_limited_api=True,
            extra_compile_args=["-O2", "-std=c99", "-Wall", "-Werror"],
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
