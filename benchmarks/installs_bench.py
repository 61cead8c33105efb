"""Benchmark: `buildmatrix installs` scanning a whole install set by range requests, vs download + audit.

The set is what `ai-dynamo[vllm]==0.8.0` resolves to for x86_64, Python 3.12
and glibc 2.39 (Ubuntu 24.04; at 2.28 vllm 0.12.0 has no wheel, so the set is
not whole). Phase 1 resolves it (uv, reported apart: the goal is about the scan).
Phase 2 scans every platform wheel with an empty cache, timed, counting the
bytes fetched against the wheels' sizes. Phase 3 (``--baseline``) downloads the
same wheels whole and runs `buildmatrix audit` on them, timed separately, and
checks that both agree on each wheel's highest GLIBC need.

    python benchmarks/installs_bench.py               # resolve + scan
    python benchmarks/installs_bench.py --baseline    # also download (~5 GB) and audit

Downloads go to $INSTALLS_BENCH_CACHE or ~/.cache/buildmatrix-installs-bench (outside git).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.version import Version

from buildmatrix.installs.http import download
from buildmatrix.installs.resolve import resolve
from buildmatrix.installs.scan import scan_wheels, tag_glibc

REQUIREMENT = "ai-dynamo[vllm]==0.8.0"
INDEX = "https://pypi.org/simple"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", action="store_true", help="also download everything and audit it")
    parser.add_argument("--glibc", default="2.39")
    args = parser.parse_args()

    started = time.monotonic()
    resolution = resolve(
        REQUIREMENT, python="3.12", arch="x86_64", glibc=Version(args.glibc), indexes=[INDEX]
    )
    resolve_s = time.monotonic() - started
    if not resolution.resolved:
        print(f"resolution failed: {resolution.error}", file=sys.stderr)
        return 1
    platform = [w for w in resolution.wheels if tag_glibc(w.filename, "x86_64") is not None]
    print(f"resolved {REQUIREMENT} (x86_64, py3.12, glibc {args.glibc}) in {resolve_s:.1f} s: "
          f"{len(resolution.wheels)} wheels, {len(platform)} platform wheels; "
          f"source only: {[s.name for s in resolution.source_only] or 'none'}")  # fmt: skip

    started = time.monotonic()
    scans = scan_wheels(platform, "x86_64", cache=None)
    scan_s = time.monotonic() - started
    total = sum(scan.size for scan in scans.values())
    fetched = sum(scan.bytes_read for scan in scans.values())
    members = sum(scan.elf_members for scan in scans.values())
    by_hash = sum(scan.by_hash for scan in scans.values())
    errors = [error for scan in scans.values() for error in scan.errors]
    top = max(scans.values(), key=lambda s: Version(s.elf_glibc or "0"))
    print(f"scan: {len(scans)} wheels, {total / 1e9:.2f} GB, {members} ELF members "
          f"({by_hash} settled from their front by vna_hash) in {scan_s:.2f} s; fetched "
          f"{fetched / 1e6:.1f} MB = {100 * fetched / total:.2f}% of the bytes; "
          f"errors: {len(errors)}")  # fmt: skip
    print(f"highest need: GLIBC {top.elf_glibc} ({top.filename}: {top.set_by})")
    for error in errors:
        print(f"  {error}")

    if not args.baseline:
        return 0
    folder = Path(
        os.environ.get("INSTALLS_BENCH_CACHE", Path.home() / ".cache" / "buildmatrix-installs-bench")
    )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):
        stale.unlink()

    def fetch(wheel_url: tuple[str, str]) -> int:
        name, url = wheel_url
        with (folder / name).open("wb") as out:
            return download(url, out, limit=8 << 30)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        downloaded = sum(pool.map(fetch, [(w.filename, w.url) for w in platform]))
    download_s = time.monotonic() - started
    started = time.monotonic()
    audit = subprocess.run(
        [sys.executable, "-m", "buildmatrix", "audit", "--format", "json", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    audit_s = time.monotonic() - started
    audited = {entry["wheel"]: entry for entry in json.loads(audit.stdout)}
    disagree = [
        name for name, scan in scans.items() if (audited[name]["glibc"] or None) != (scan.elf_glibc or None)
    ]
    print(f"baseline: downloaded {downloaded / 1e9:.2f} GB in {download_s:.1f} s, "
          f"`buildmatrix audit` {audit_s:.1f} s, total {download_s + audit_s:.1f} s")  # fmt: skip
    print(
        f"highest GLIBC need per wheel, scan vs audit: {len(scans) - len(disagree)} agree, "
        f"{len(disagree)} differ"
    )
    for name in disagree:
        print(f"  {name}: scan {scans[name].elf_glibc}, audit {audited[name]['glibc']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
