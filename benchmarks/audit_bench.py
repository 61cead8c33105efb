"""Benchmark: `buildmatrix audit` against `auditwheel show` and against the inflate floor.

Side by side in one run, each measurement in a fresh child process (wall time
includes interpreter start-up; CPU time and peak RSS are the child's own, from
``os.wait4``):

* the audit of the vllm 0.12.0 x86_64 wheel against a single-threaded inflate of
  its ELF members with the stdlib's zlib through ``zipfile`` (every member but
  ``*.py`` that starts with the ELF magic, read to the end): the cost any plain
  reader of the zip pays. Alternated, best of ``--repeat`` each.
* the audit against ``auditwheel show --ldpaths "" --json`` over nixl_cu12 0.7.1
  and vllm 0.12.0 (x86_64); auditwheel once per wheel (it takes minutes), the
  audit best of ``--repeat``; both must give the same tags.

    python benchmarks/audit_bench.py --download   # fetch the two wheels into the cache first
    python benchmarks/audit_bench.py

The cache folder (outside git) is $AUDIT_BENCH_CACHE or ~/.cache/buildmatrix-audit-bench.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

# (requirement, --platform, --python-version)
DOWNLOADS = [
    ("vllm==0.12.0", "manylinux_2_31_x86_64", "3.12"),
    ("nixl-cu12==0.7.1", "manylinux_2_28_x86_64", "3.12"),
]
WHEELS = {
    "vllm": "vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl",
    "nixl": "nixl_cu12-0.7.1-cp312-cp312-manylinux_2_28_x86_64.whl",
}


def cache_folder() -> Path:
    default = Path.home() / ".cache" / "buildmatrix-audit-bench"
    return Path(os.environ.get("AUDIT_BENCH_CACHE", default))


def download(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for requirement, platform, python in DOWNLOADS:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", platform, "--python-version", python,
             "--dest", str(folder), requirement],
            check=True,
        )  # fmt: skip


class Run:
    def __init__(self, wall: float, cpu: float, rss_mib: int, out: str) -> None:
        self.wall, self.cpu, self.rss_mib, self.out = wall, cpu, rss_mib, out


# Children may write bytecode, as any normal install has it: with
# PYTHONDONTWRITEBYTECODE set (it is on the shared machine) every run would
# recompile auditwheel, pyelftools and packaging from source, both tools alike.
CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run_child(args: list[str]) -> Run:
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=CHILD_ENV)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # auditwheel/our audit: 1 = violations
        msg = f"{args} failed with status {status}"
        raise RuntimeError(msg)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out)


def child_ours(wheel: str) -> None:
    from buildmatrix.audit import audit_wheel
    from buildmatrix.audit.inflate import INFLATE_BACKEND

    audit = audit_wheel(Path(wheel))
    print(
        json.dumps({"sym_tag": audit.sym_tag, "overall_tag": audit.overall_tag, "inflate": INFLATE_BACKEND})
    )


def child_inflate(wheel: str) -> None:
    """Single-threaded stdlib inflate of the ELF members, with the audit's read size."""
    from buildmatrix.audit.elf import CHUNK

    total = 0
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or info.filename.endswith(".py"):
                continue
            with archive.open(info) as stream:
                if stream.read(4) != b"\x7fELF":
                    continue
                total += 4
                while chunk := stream.read(CHUNK):
                    total += len(chunk)
    print(json.dumps({"elf_bytes": total}))


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--download", action="store_true", help="fetch the two wheels first")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the fast measurements (best of)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "WHEEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, wheel = args.child
        {"ours": child_ours, "inflate": child_inflate}[mode](wheel)
        return 0
    folder = cache_folder()
    if args.download:
        download(folder)
    wheels = {key: folder / name for key, name in WHEELS.items()}
    missing = [str(path) for path in wheels.values() if not path.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: run with --download", file=sys.stderr)
        return 2
    me = [sys.executable, __file__, "--child"]
    auditwheel = [sys.executable, "-m", "auditwheel", "show", "--ldpaths", "", "--json"]
    run_child([*me, "ours", str(wheels["nixl"])])  # warm-up: bytecode written, files cached
    run_child([*auditwheel, str(wheels["nixl"])])
    print(f"start: {load()}", flush=True)

    vllm = str(wheels["vllm"])
    inflate_runs, ours_vllm = [], []
    for _ in range(args.repeat):  # alternated: the shared machine's load hits both alike
        inflate_runs.append(run_child([*me, "inflate", vllm]))
        ours_vllm.append(run_child([*me, "ours", vllm]))
    inflate = min(inflate_runs, key=lambda r: r.wall)
    ours_best = min(ours_vllm, key=lambda r: r.wall)
    elf_mib = json.loads(inflate.out)["elf_bytes"] / 2**20
    backend = json.loads(ours_best.out)["inflate"]

    rows = []
    total_ours = total_theirs = 0.0
    for key, wheel in wheels.items():
        runs = (
            ours_vllm if key == "vllm" else [run_child([*me, "ours", str(wheel)]) for _ in range(args.repeat)]
        )
        ours = min(runs, key=lambda r: r.wall)
        theirs = run_child([*auditwheel, str(wheel)])
        mine, reference = json.loads(ours.out), json.loads(theirs.out)
        same = (mine["sym_tag"], mine["overall_tag"]) == (reference["sym_tag"], reference["overall_tag"])
        total_ours += ours.wall
        total_theirs += theirs.wall
        rows.append(
            f"| {wheel.name} | {wheel.stat().st_size / 2**20:,.0f} | {ours.wall:.2f} ({ours.cpu:.2f}) "
            f"| {theirs.wall:.2f} ({theirs.cpu:.2f}) | {theirs.wall / ours.wall:.1f}x | {ours.rss_mib} "
            f"| {theirs.rss_mib} | {'yes' if same else 'NO'} |"
        )
        print(rows[-1], flush=True)

    print()
    print(f"end: {load()}")
    print()
    print(
        f"vllm 0.12.0: single-threaded stdlib inflate of its {elf_mib:,.0f} MiB of ELF members "
        f"{inflate.wall:.2f} s wall ({inflate.cpu:.2f} s CPU); the audit ({backend}, "
        f"{len(os.sched_getaffinity(0))} threads) {ours_best.wall:.2f} s wall ({ours_best.cpu:.2f} s CPU, "
        f"peak RSS {ours_best.rss_mib} MiB) = **{ours_best.wall / inflate.wall:.2f}x** "
        f"(best of {args.repeat} each, alternated; target <= 0.35x)"
    )
    print()
    print("| wheel | MiB | buildmatrix s wall (CPU) | auditwheel s wall (CPU) | speedup "
          "| our peak RSS MiB | auditwheel peak RSS MiB | same tags |")  # fmt: skip
    print("|---|--:|--:|--:|--:|--:|--:|:-:|")
    print("\n".join(rows))
    print(
        f"| **both** | | **{total_ours:.2f}** | **{total_theirs:.2f}** "
        f"| **{total_theirs / total_ours:.1f}x** (target >= 20x) | | | |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
