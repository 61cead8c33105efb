"""Benchmark: plan every image build and write the bake file, for growing matrices.

The image plan runs before every build and in `--dry-run`, and it reads the
Dockerfile once per image to check its args against the pins; this measures
that it stays cheap as releases accumulate. Synthetic matrices repeat the real
v0.7.1 release under new names (3 image builds per release).
Run: python benchmarks/images_bench.py [--releases 5,100,1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from expand_bench import ROOT, synthetic_matrix

from buildmatrix.images import ImageOptions, bake_definition, plan_images
from buildmatrix.images.plan import resolve_frameworks
from buildmatrix.loader import parse_matrix

OPTIONS = ImageOptions(
    created=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    cache_from="registry.example.com/cache",
    cache_to="registry.example.com/cache",
)


def measure(releases: int, repeat: int) -> tuple[int, float, int]:
    text = synthetic_matrix(releases)
    matrix = parse_matrix(text, ROOT / "matrix.toml")
    frameworks = resolve_frameworks(matrix, ["all"])
    times = []
    size = 0
    builds = 0
    for _ in range(repeat):
        started = time.perf_counter()
        plan = plan_images(matrix, matrix.releases, frameworks, OPTIONS)
        size = len(json.dumps(bake_definition(plan, ROOT)))
        times.append(time.perf_counter() - started)
        builds = len(plan)
    return builds, statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", default="0,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| builds | plan + bake s | ms/build | bake JSON KiB |")
    print("|-------:|--------------:|---------:|--------------:|")
    for releases in (int(n) for n in args.releases.split(",")):
        builds, seconds, size = measure(releases, args.repeat)
        print(f"| {builds:6,} | {seconds:13.3f} | {seconds / builds * 1000:8.2f} | {size / 1024:13,.0f} |")


if __name__ == "__main__":
    main()
