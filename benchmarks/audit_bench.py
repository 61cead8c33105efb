"""Benchmark: `buildmatrix audit` against `auditwheel show` on real published wheels.

Each measurement runs in a fresh child process, so wall time includes
interpreter start-up for both tools and the peak RSS is the child's own
(``os.wait4``). For the biggest wheel it also times merely inflating its ELF
members (every member that starts with the ELF magic, read to the end through
``zipfile``, with the same thread count, order and read size the audit uses):
the floor any reader of the zip pays.

    python benchmarks/audit_bench.py                 # wheels already in the cache
    python benchmarks/audit_bench.py --download      # fetch the set into the cache first

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# (requirement, --platform) of the published wheels in the set.
DOWNLOADS = [
    ("torch==2.1.0", "manylinux1_x86_64"),  # 670 MB, CUDA libraries inside
    ("opencv-python==4.10.0.84", "manylinux2014_x86_64"),  # many bundled libraries
    ("scipy==1.14.1", "manylinux2014_x86_64"),  # bundled OpenBLAS, gfortran
    ("numpy==2.1.3", "manylinux2014_x86_64"),
    ("pillow==11.0.0", "manylinux2014_x86_64"),  # bundled image codecs
]
LOCAL = [Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")]


def cache_folder() -> Path:
    default = Path.home() / ".cache" / "buildmatrix-audit-bench"
    return Path(os.environ.get("AUDIT_BENCH_CACHE", default))


def download(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for requirement, platform in DOWNLOADS:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
             "--dest", str(folder), requirement],
            check=True,
        )  # fmt: skip


def run_child(args: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, stdout) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss // 1024, out


def child_ours(wheel: str) -> None:
    from buildmatrix.audit import audit_wheel

    audit = audit_wheel(Path(wheel))
    print(json.dumps({"sym_tag": audit.sym_tag, "overall_tag": audit.overall_tag}))


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    from buildmatrix.audit.elf import CHUNK  # the same read size as the audit

    with archive.open(info) as stream:
        if stream.read(4) != b"\x7fELF":
            return 0
        total = 4
        while chunk := stream.read(CHUNK):
            total += len(chunk)
        return total


def child_inflate(wheel: str) -> None:
    workers = len(os.sched_getaffinity(0))
    with zipfile.ZipFile(wheel) as archive, ThreadPoolExecutor(workers) as pool:
        infos = sorted(
            (i for i in archive.infolist() if not i.is_dir() and not i.filename.endswith(".py")),
            key=lambda i: i.compress_size,
            reverse=True,
        )
        total = sum(pool.map(lambda info: _inflate(archive, info), infos))
    print(json.dumps({"elf_bytes": total}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--download", action="store_true", help="fetch the wheel set first")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "WHEEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, wheel = args.child
        {"ours": child_ours, "inflate": child_inflate}[mode](wheel)
        return 0
    folder = cache_folder()
    if args.download:
        download(folder)
    wheels = [w for w in LOCAL if w.exists()] + sorted(folder.glob("*.whl"))
    if not wheels:
        print(f"no wheels: run with --download (cache: {folder})", file=sys.stderr)
        return 2
    me = [sys.executable, __file__, "--child"]
    auditwheel = [sys.executable, "-m", "auditwheel", "show", "--ldpaths", "", "--json"]
    rows = []
    total_ours = total_theirs = 0.0
    for wheel in wheels:
        ours_s, ours_rss, ours_out = run_child([*me, "ours", str(wheel)])
        theirs_s, theirs_rss, theirs_out = run_child([*auditwheel, str(wheel)])
        ours = json.loads(ours_out)
        theirs = json.loads(theirs_out)
        same = (ours["sym_tag"], ours["overall_tag"]) == (theirs["sym_tag"], theirs["overall_tag"])
        total_ours += ours_s
        total_theirs += theirs_s
        rows.append(
            f"| {wheel.name} | {wheel.stat().st_size / 2**20:,.0f} | {ours_s:.2f} | {theirs_s:.2f} "
            f"| {theirs_s / ours_s:.1f}x | {ours_rss} | {theirs_rss} | {'yes' if same else 'NO'} |"
        )
        print(rows[-1], flush=True)
    # The shared machine is noisy: alternate the two, best of three each.
    biggest = max(wheels, key=lambda w: w.stat().st_size)
    inflate_runs, ours_runs = [], []
    for _ in range(3):
        inflate_runs.append(run_child([*me, "inflate", str(biggest)]))
        ours_runs.append(run_child([*me, "ours", str(biggest)]))
    inflate_s, inflate_rss, inflate_out = min(inflate_runs)
    ours_big = min(run[0] for run in ours_runs)
    elf_mib = json.loads(inflate_out)["elf_bytes"] / 2**20
    print()
    print("| wheel | MiB | buildmatrix s | auditwheel s | speedup | our peak RSS MiB "
          "| auditwheel peak RSS MiB | same tags |")  # fmt: skip
    print("|---|--:|--:|--:|--:|--:|--:|:-:|")
    print("\n".join(rows))
    print(
        f"| **all {len(wheels)}** | | **{total_ours:.2f}** | **{total_theirs:.2f}** "
        f"| **{total_theirs / total_ours:.1f}x** | | | |"
    )
    print()
    print(
        f"Biggest wheel {biggest.name}: inflating its {elf_mib:,.0f} MiB of ELF members "
        f"takes {inflate_s:.2f} s (peak RSS {inflate_rss} MiB); the audit takes {ours_big:.2f} s "
        f"= {ours_big / inflate_s:.2f}x of that (best of 3 each, alternated)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
