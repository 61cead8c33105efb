"""The unit tests' compiler (gcc, which .ci/run installs) and a sample extension built with it."""

from __future__ import annotations

import shutil

import pytest

from tests.support.elffactory import (
    LOG2,
    compile_so,
    extension,
)


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
