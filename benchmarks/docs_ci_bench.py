"""Benchmark: render the docs page and plan the CI job matrices for growing matrices.

No goal is set by the issue; this records that both stay cheap and linear as the
release columns grow, including sharding plans far over GitHub's 256 jobs. The
synthetic matrix is the real matrix.toml with v0.7.1 repeated (11 targets each),
as in expand_bench.py.
Run: python benchmarks/docs_ci_bench.py [--releases 10,50,200,1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from expand_bench import synthetic_matrix

from buildmatrix import ci, docs
from buildmatrix.errors import UsageError
from buildmatrix.expand import expand
from buildmatrix.loader import parse_matrix

ROOT = Path(__file__).resolve().parent.parent


def measure(releases: int, repeat: int) -> tuple[int, int, str, float, float | None]:
    matrix = parse_matrix(synthetic_matrix(releases), ROOT / "matrix.toml")
    render_times, ci_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        page = docs.render(matrix)
        render_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        try:
            outputs = ci.pipeline_outputs(expand(matrix), matrix.releases)
        except UsageError:  # over GitHub's 1 MB of job outputs: refused, as it should be
            return len(matrix.releases), len(page), "refused (> 1 MB)", min(render_times), None
        ci_times.append(time.perf_counter() - start)
    shards = str(len(json.loads(outputs["images"])))
    return len(matrix.releases), len(page), shards, min(render_times), min(ci_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--releases", default="10,50,200,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| releases | page bytes | image shards | render s | ci plan s |")
    print("|---------:|-----------:|-------------:|---------:|----------:|")
    for count in (int(n) for n in args.releases.split(",")):
        releases, size, shards, render_s, ci_s = measure(count, args.repeat)
        ci_text = "-" if ci_s is None else f"{ci_s:.3f}"
        print(f"| {releases:,} | {size:,} | {shards} | {render_s:.3f} | {ci_text} |")


if __name__ == "__main__":
    main()
