"""buildmatrix.installs.scan: a tag's glibc promise, and the scan cache validated, not trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from packaging.version import Version

from buildmatrix.installs.scan import WheelFile, scan_wheels, tag_glibc
from tests.support.localindex import serve_index


def test_tag_glibc_is_the_lowest_promise_for_the_arch() -> None:
    assert tag_glibc("a-1-cp312-cp312-manylinux1_x86_64.manylinux_2_28_x86_64.whl", "x86_64") == Version(
        "2.5"
    )
    assert tag_glibc("a-1-cp312-cp312-manylinux_2_28_aarch64.whl", "x86_64") is None
    assert tag_glibc("a-1-py3-none-any.whl", "x86_64") is None


def test_cache_entries_are_validated_not_trusted(built: dict[str, Path], tmp_path: Path) -> None:
    wheel = built["underclaim"]
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with serve_index([wheel]) as served:
        entry = WheelFile(wheel.name, served.file_url(wheel.name), sha)
        first = scan_wheels([entry], "x86_64", cache=cache)[wheel.name]
        assert first.elf_glibc == "2.29"
        assert not first.cached
        again = scan_wheels([entry], "x86_64", cache=cache)[wheel.name]
        assert again.cached
        assert again.elf_glibc == "2.29"
        assert again.bytes_read == 0
        record = json.loads((cache / f"{sha}.json").read_text())
        for poison in (
            {**record, "filename": "other-1.0-py3-none-any.whl", "elf_glibc": "2.5"},  # another wheel's entry
            {**record, "elf_glibc": "../../etc"},  # not a version
            {**record, "elf_members": -1},
            "not even an object",
        ):
            (cache / f"{sha}.json").write_text(json.dumps(poison))
            rescanned = scan_wheels([entry], "x86_64", cache=cache)[wheel.name]
            assert not rescanned.cached
            assert rescanned.elf_glibc == "2.29"
