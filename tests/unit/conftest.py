"""Fixtures of the unit tests: the compiler (gcc, which .ci/run installs), a sample extension
built with it, and the installs tests' wheels on a PEP 503/691 index served on 127.0.0.1.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.elffactory import (
    LOG2,
    compile_so,
    extension,
)
from tests.support.installs import LONG_RPATH, _compile, _tool
from tests.support.localindex import Served, build_sdist, build_wheel, serve_index


@pytest.fixture(scope="module")
def gcc() -> str:
    found = shutil.which("gcc")
    if found is None:
        pytest.fail("gcc is needed to build the test wheels (apt-get install gcc)")
    return found


@pytest.fixture(scope="module")
def sample(gcc: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An ELF needing versions from two libraries (libm and libc): two verneed entries."""
    folder = tmp_path_factory.mktemp("sample")
    source = extension(LOG2 + '\n#include <stdio.h>\nint hi(void){return puts("hi");}')
    return compile_so(gcc, folder, "ext", source, "-lm").read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The index's files: the meta package with two extras and the packages they pull in."""
    folder = tmp_path_factory.mktemp("index")
    build = tmp_path_factory.mktemp("build")
    needs_229 = _compile(build, "fast", "#include <math.h>\ndouble f(double x){return log2(x);}\n", "-lm")
    plain = _compile(build, "plain", '#include <stdio.h>\nint hi(void){return puts("hi");}\n')
    patched_path = build / "libpatched.so"
    patched_path.write_bytes(plain)
    subprocess.run([_tool("patchelf"), "--set-rpath", LONG_RPATH, patched_path], check=True)
    return {
        "meta": build_wheel(
            folder,
            "ai-dynamo",
            "0.7.1",
            "py3-none-any",
            extras=["vllm", "sglang"],
            requires=[
                'underclaim==1.0; extra == "vllm"',
                'patched==1.0; extra == "vllm"',
                'srconly==1.0; extra == "vllm"',
                'patched==1.0; extra == "sglang"',
            ],
        ),
        "underclaim": build_wheel(
            folder,
            "underclaim",
            "1.0",
            "cp312-cp312-manylinux_2_17_x86_64",
            files={"underclaim/_fast.so": needs_229},
        ),
        "patched": build_wheel(
            folder,
            "patched",
            "1.0",
            "py3-none-manylinux_2_17_x86_64",
            files={
                "patched.libs/libpatched.so": patched_path.read_bytes(),
                "patched/data.bin": random.Random(0).randbytes(1 << 20),
            },
        ),
        "srconly": build_sdist(
            folder,
            "srconly",
            "1.0",
            "Metadata-Version: 2.2\nName: srconly\nVersion: 1.0\nRequires-Dist: helper==2.0\n"
            'Requires-Dist: never-installed; extra == "docs"\n',
        ),
        "helper": build_wheel(folder, "helper", "2.0", "py3-none-any"),
    }


@pytest.fixture(params=[True, False], ids=["ranges", "no-ranges"])
def index(
    request: pytest.FixtureRequest, built: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    monkeypatch.setenv("UV_NO_CACHE", "1")  # every test sees its own server, never a cached page
    with serve_index(list(built.values()), ranges=request.param) as served:
        yield served
