"""Benchmark: load + expand synthetic matrices of growing size (goal: 10,000 targets < 1 s).

The synthetic matrix is the real matrix.toml with its releases repeated under new
names, so every target goes through the same validation and rules as in real use.
Run: python benchmarks/expand_bench.py [--sizes 1000,2500,5000,10000,20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from buildmatrix.expand import expand
from buildmatrix.loader import parse_matrix

ROOT = Path(__file__).resolve().parent.parent


def synthetic_matrix(releases: int) -> str:
    text = (ROOT / "matrix.toml").read_text(encoding="utf-8")
    start = text.index('[[release]]\nname = "v0.7.1"')
    end = text.index("[[release]]", start + 1)
    block = text[start:end]
    extra = []
    for index in range(releases):
        name = f"v1.{index // 100}.{index % 100}"
        extra.append(
            block.replace('name = "v0.7.1"', f'name = "{name}"').replace(
                'version = "0.7.1"', f'version = "{name[1:]}"'
            )
        )
    cut = text.index(
        "# ---------------------------------------------------------------------------\n# Wheels."
    )
    return text[:cut] + "".join(extra) + text[cut:]


def measure(releases: int, repeat: int) -> tuple[int, float, float]:
    text = synthetic_matrix(releases)
    path = ROOT / "matrix.toml"
    load_times, expand_times = [], []
    targets = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        matrix = parse_matrix(text, path)
        t1 = time.perf_counter()
        plan = expand(matrix)
        json_ready = [t.to_json() for t in plan]
        t2 = time.perf_counter()
        targets = len(json_ready)
        load_times.append(t1 - t0)
        expand_times.append(t2 - t1)
    return targets, statistics.median(load_times), statistics.median(expand_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,2500,5000,10000,20000", help="approximate target counts")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    per_release = 11  # targets one release of the real matrix expands to
    print(f"{'targets':>8} {'load s':>8} {'expand s':>9} {'total s':>8} {'us/target':>10}")
    for size in (int(s) for s in args.sizes.split(",")):
        targets, load, expansion = measure(max(1, size // per_release), args.repeat)
        total = load + expansion
        print(f"{targets:>8} {load:>8.3f} {expansion:>9.3f} {total:>8.3f} {total / targets * 1e6:>10.1f}")


if __name__ == "__main__":
    main()
