"""Benchmark: `buildmatrix wheels` cold build vs a rerun with nothing changed (goal: < 10%).

Each round copies matrix.toml and the bundled examples to a scratch folder and
runs the real CLI (a new process, as a user would) with the local backend:

- cold: an empty output folder, so every buildable target is built, repaired,
  audited and published;
- rerun: the same command again; every target's inputs are unchanged, so it
  only hashes the sources, probes the tools and reads the manifest.

The uv cache is warm after the first round (as on any machine that built
once), so "cold" means cold for buildmatrix, not for the network.
Run: python benchmarks/wheels_bench.py [--rounds 3] [--reruns 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wheels(project: Path, out: Path) -> tuple[float, list[str]]:
    command = [
        sys.executable,
        "-m",
        "buildmatrix",
        "wheels",
        "--matrix",
        str(project / "matrix.toml"),
        "--out",
        str(out),
        "--backend",
        "local",
        "--format",
        "json",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"buildmatrix wheels failed ({result.returncode}):\n{result.stderr}")
    statuses = [r["status"] for r in json.loads(result.stdout)["results"]]
    return elapsed, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold builds to measure")
    parser.add_argument("--reruns", type=int, default=5, help="no-change reruns per round")
    args = parser.parse_args()
    colds: list[float] = []
    reruns: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        project.mkdir()
        shutil.copy(ROOT / "matrix.toml", project)
        shutil.copytree(ROOT / "examples", project / "examples")
        for round_ in range(args.rounds):
            out = Path(scratch) / f"out{round_}"
            cold, statuses = wheels(project, out)
            built = statuses.count("built")
            colds.append(cold)
            for _ in range(args.reruns):
                again, statuses = wheels(project, out)
                if "built" in statuses:
                    raise SystemExit(f"a rerun with nothing changed rebuilt: {statuses}")
                reruns.append(again)
            print(
                f"round {round_ + 1}: cold {cold:.2f} s ({built} wheels built), "
                f"reruns {', '.join(f'{r:.2f}' for r in reruns[-args.reruns :])} s"
            )
    cold_median = statistics.median(colds)
    rerun_median = statistics.median(reruns)
    print()
    print("| cold build s (median) | no-change rerun s (median) | rerun / cold |")
    print("|----------------------:|---------------------------:|-------------:|")
    print(f"| {cold_median:21.2f} | {rerun_median:26.2f} | {rerun_median / cold_median:11.1%} |")
    goal = "met" if rerun_median < 0.10 * cold_median else "NOT met"
    print(f"\ngoal (rerun < 10% of cold): {goal}")


if __name__ == "__main__":
    main()
