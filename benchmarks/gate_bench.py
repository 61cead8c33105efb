"""Benchmark: the release gate's bounded work (issue 10, item 7).

1. Extras comparison: a meta wheel whose METADATA has N Requires-Dist lines
   spread over N/10 extras (``name==1.0; extra == "eK"``), checked by
   ``check_wheel`` against the real matrix. The cost per requirement should stay
   flat (linear), where grouping by evaluating every marker for every extra
   (what verify did before) grows with N x extras.
2. A METADATA that inflates to 1 GiB (a few MB on disk): ``verify --wheel`` in a
   fresh process; its time and peak memory (ru_maxrss of the child).

Usage: python benchmarks/gate_bench.py [--sizes 1000,2000,4000,8000,16000] [--bomb-mib 1024]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


from buildmatrix.loader import load_matrix  # noqa: E402
from buildmatrix.verify.extras import check_wheel  # noqa: E402
from buildmatrix.verify.report import Collector  # noqa: E402
from buildmatrix.wheelmeta import read_wheel_metadata  # noqa: E402


def big_wheel(folder: Path, count: int) -> Path:
    extras = [f"e{k}" for k in range(max(1, count // 10))]
    lines = [f'dep{i}==1.0; extra == "{extras[i % len(extras)]}"' for i in range(count)]
    metadata = "Metadata-Version: 2.1\nName: ai-dynamo\nVersion: 0.7.1\n"
    metadata += "".join(f"Requires-Dist: {line}\n" for line in lines)
    metadata += "".join(f"Provides-Extra: {e}\n" for e in extras)
    path = folder / "ai_dynamo-0.7.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ai_dynamo-0.7.1.dist-info/METADATA", metadata)
    return path


def old_grouping(path: Path) -> int:
    """Verify's former grouping: every marker evaluated for every extra and Python."""
    metadata = read_wheel_metadata(path)
    environments = [{"python_version": p, "python_full_version": f"{p}.0"} for p in ("3.10", "3.11", "3.12")]
    grouped = 0
    for requirement in metadata.requires:
        marker = requirement.marker
        assert marker is not None
        if any(marker.evaluate({**env, "extra": ""}) for env in environments):
            continue
        for extra in metadata.extras:
            if any(marker.evaluate({**env, "extra": extra}) for env in environments):
                grouped += 1
    return grouped


def extras_table(sizes: list[int]) -> None:
    matrix = load_matrix(REPO / "matrix.toml")
    print("| Requires-Dist | extras | METADATA kB | check_wheel s | µs/requirement | old grouping s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in sizes:
        with tempfile.TemporaryDirectory() as work:
            wheel = big_wheel(Path(work), count)
            with zipfile.ZipFile(wheel) as archive:
                size = archive.getinfo("ai_dynamo-0.7.1.dist-info/METADATA").file_size
            started = time.perf_counter()
            collector = Collector()
            check_wheel(matrix, wheel, None, collector)
            elapsed = time.perf_counter() - started
            assert len(collector.checks) >= count  # every unexpected requirement is a failed check
            old = "-"
            if count <= 4000:  # quadratic: larger sizes take minutes
                started = time.perf_counter()
                old_grouping(wheel)
                old = f"{time.perf_counter() - started:.2f}"
        print(
            f"| {count:,} | {max(1, count // 10):,} | {size / 1024:.0f} | {elapsed:.3f} "
            f"| {elapsed / count * 1e6:.1f} | {old} |"
        )


def bomb(mib: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        wheel = Path(work) / "ai_dynamo-0.7.1-py3-none-any.whl"
        zeros = b"\0" * (1 << 20)
        with (
            zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            archive.open("ai_dynamo-0.7.1.dist-info/METADATA", "w") as member,
        ):
            for _ in range(mib):
                member.write(zeros)
        code = (
            "import sys; from pathlib import Path; from buildmatrix.wheelmeta import read_wheel_metadata\n"
            "try:\n    read_wheel_metadata(Path(sys.argv[1]))\nexcept Exception as e:\n    print(e)\n"
        )
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", code, str(wheel)], capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"METADATA of {mib} MiB ({wheel.stat().st_size / 1e6:.1f} MB on disk): "
            f"{elapsed:.2f} s, peak {peak:.0f} MB"
        )
        print("  ->", result.stdout.strip() or result.stderr.strip()[-300:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000")
    parser.add_argument("--bomb-mib", type=int, default=1024)
    args = parser.parse_args()
    extras_table([int(s) for s in args.sizes.split(",")])
    bomb(args.bomb_mib)


if __name__ == "__main__":
    main()
