"""Benchmark: verifying a ~2 GB image straight from a local registry vs `skopeo copy`.

Writes verify_bench.py's synthetic OCI archive (default 2.2 GB, two gzip layers
of incompressible data plus 200,000 small files, labelled as v0.7.1's vLLM image
of the repository's matrix), starts Debian's ``docker-registry`` on a free
127.0.0.1 port with its storage in the work directory, pushes the image with
``skopeo copy``, then measures, each in a fresh process (best of two; peak
memory is that process's VmHWM, or for skopeo its ru_maxrss):

- skopeo: ``skopeo copy --src-tls-verify=false docker://... oci:DIR`` (the yardstick:
  it downloads every blob, checks its digest and writes it to disk)
- full:   ``buildmatrix verify --image docker://...`` (every layer streamed, hashed and
  scanned; what the release gate runs)
- quick:  ``buildmatrix verify --image docker://... --quick``

Goals (issue #13): full under 100 MB and within 1.5x of skopeo's time.

Usage: python benchmarks/registry_bench.py [--size-gb 2.2] [--small-files 200000] [--workdir /tmp]
Needs docker-registry and skopeo (apt-get install docker-registry skopeo). Everything
it writes is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_bench import REPO, _peak_rss_mb, build_archive


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _child(mode: str, reference: str, scratch: Path) -> None:
    """One measurement in this process; prints its figures as JSON."""
    started = time.perf_counter()
    if mode == "skopeo":
        target = scratch / "skopeo-oci"
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--src-tls-verify=false", reference, f"oci:{target}"], check=True
        )
        elapsed = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ok = (target / "index.json").is_file()
        shutil.rmtree(target, ignore_errors=True)
    else:
        from buildmatrix.loader import load_matrix
        from buildmatrix.verify.images import check_image
        from buildmatrix.verify.report import Collector

        collector = Collector()
        check_image(load_matrix(REPO / "matrix.toml"), reference, None, collector, quick=mode == "quick")
        elapsed = time.perf_counter() - started
        peak_mb = _peak_rss_mb()
        blobs = [c.found for c in collector.checks if c.name == "blob digests"]
        ok = not collector.errors and all(c.ok for c in collector.checks) and len(collector.checks) >= 10
        print(json.dumps({"blobs": blobs}), file=sys.stderr)
    print(json.dumps({"mode": mode, "seconds": elapsed, "peak_mb": peak_mb, "ok": ok}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=2.2)
    parser.add_argument("--small-files", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--modes", default="skopeo,full,quick")
    parser.add_argument("--runs", type=int, default=2, help="runs per mode; the best is reported")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "REF", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], Path(args.child[2]))
        return
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install docker-registry skopeo")
    free = shutil.disk_usage(args.workdir).free / 1e9
    if free < args.size_gb * 3.5:
        sys.exit(f"need {args.size_gb * 3.5:.1f} GB free in {args.workdir}, have {free:.1f} GB")
    work = Path(tempfile.mkdtemp(prefix="buildmatrix-registry-bench-", dir=args.workdir))
    registry = None
    try:
        started = time.perf_counter()
        archive = build_archive(work / "image.oci.tar", args.size_gb, args.small_files)
        print(f"archive: {archive.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.1f}s")
        port = _free_port()
        config = work / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work}/storage\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        registry = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        reference = f"docker://127.0.0.1:{port}/bench/vllm-runtime:v0.7.1"
        started = time.perf_counter()
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{archive}", reference],
            check=True,
        )
        print(f"pushed with skopeo copy in {time.perf_counter() - started:.1f}s", flush=True)
        archive.unlink()
        results = {}
        for mode in args.modes.split(","):
            runs = []
            for _ in range(args.runs):
                child = subprocess.run(
                    [sys.executable, __file__, "--child", mode, reference, str(work)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(child.stdout))
                if child.stderr.strip():
                    print(f"  {mode}: {child.stderr.strip()}")
            best = min(runs, key=lambda run: run["seconds"])
            results[mode] = best
            print(
                f"{mode:6s} {best['seconds']:7.1f} s  peak {best['peak_mb']:7.1f} MB  ok={best['ok']}"
                f"  (runs: {', '.join(format(run['seconds'], '.1f') for run in runs)})",
                flush=True,
            )
        if "skopeo" in results and "full" in results:
            ratio = results["full"]["seconds"] / results["skopeo"]["seconds"]
            print(
                f"full / skopeo: {ratio:.2f}x time (goal <= 1.5x), peak {results['full']['peak_mb']:.1f} MB"
            )
    finally:
        if registry is not None:
            registry.terminate()
            registry.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
