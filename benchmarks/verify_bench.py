"""Benchmark: verifying a large image by streaming its layers vs extracting everything.

Writes a synthetic OCI archive (default 2.2 GB, gzip layers of incompressible
data) for release v0.7.1's vLLM image of the repository's matrix, with the
dist-info, the pins file and libnixl near the end of the last layer. Then, each
in a fresh process so peak memory (ru_maxrss) is its own:

- quick:  ``buildmatrix verify --image ... --quick`` (stops once the pins are found)
- full:   ``buildmatrix verify --image ...`` (reads every layer to count libnixl)
- stdlib: tarfile's stream mode (``r|gz``) over every layer, headers only, no extraction
- naive:  extract every layer to a temporary directory, then read the METADATA files

Usage: python benchmarks/verify_bench.py [--size-gb 2.2] [--small-files 200000] [--workdir /tmp] [--keep]
The archive and the extraction are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import email.parser
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SITE = "usr/local/lib/python3.12/dist-packages"
BLOCK = 16 * 1024 * 1024  # one random block, reused: gzip's 32 KiB window cannot see repeats
FILE_SIZE = 8 * 1024 * 1024
LABELS = {
    "org.buildmatrix.release": "v0.7.1",
    "org.buildmatrix.framework": "vllm",
    "org.buildmatrix.pin.vllm": "0.11.0",
    "org.buildmatrix.pin.nixl": "0.7.1",
}
PINS = {
    "release": "v0.7.1",
    "framework": "vllm",
    "cuda": "12.8",
    "python": "3.12",
    "pins": {"vllm": "0.11.0", "nixl": "0.7.1"},
}


class _HashingWriter(io.RawIOBase):
    """Write-through file wrapper that hashes and counts what passes."""

    def __init__(self, target: io.BufferedWriter) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.target.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def _write_layer(
    path: Path, files: int, block: bytes, tail: list[tuple[str, bytes]], small_files: int = 0
) -> tuple[str, int, str]:
    """A gzip layer of ``small_files`` tiny files and ``files`` random ones, then ``tail``."""
    with path.open("wb") as raw:
        counter = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=1, mtime=0) as compressed:
            diff = hashlib.sha256()

            class _Tee(io.RawIOBase):
                def writable(self) -> bool:
                    return True

                def write(self, data: bytes) -> int:  # type: ignore[override]
                    diff.update(data)
                    compressed.write(data)
                    return len(data)

            with tarfile.open(fileobj=_Tee(), mode="w|", format=tarfile.PAX_FORMAT) as archive:
                for number in range(small_files):  # like site-packages: many small files
                    _add(
                        archive,
                        f"usr/lib/python3/pkg{number // 1000:04d}/mod{number % 1000:04d}.py",
                        b"x" * 100,
                    )
                for number in range(files):
                    offset = (number * 4099) % (len(block) - FILE_SIZE)
                    info = tarfile.TarInfo(f"opt/data/{path.stem}/blob{number:05d}.bin")
                    info.size = FILE_SIZE
                    archive.addfile(info, io.BytesIO(block[offset : offset + FILE_SIZE]))
                for name, data in tail:
                    _add(archive, name, data)
    return "sha256:" + counter.sha.hexdigest(), counter.size, "sha256:" + diff.hexdigest()


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()


def build_archive(target: Path, size_gb: float, small_files: int) -> Path:
    """An OCI archive of two layers, ~45% and ~55% of ``size_gb``; the first also
    holds ``small_files`` tiny files (memory must not grow with the file count)."""
    block = os.urandom(BLOCK)
    total_files = int(size_gb * 1e9 / FILE_SIZE)
    first, second = int(total_files * 0.45), total_files - int(total_files * 0.45)
    work = target.parent / (target.name + ".parts")
    work.mkdir()
    tail = [
        (f"{SITE}/nixl_cu12/libnixl.so", b"\x7fELF" + b"\0" * 1024),
        (f"{SITE}/nixl-0.7.1.dist-info/METADATA", _metadata("nixl", "0.7.1")),
        (f"{SITE}/vllm-0.11.0.dist-info/METADATA", _metadata("vllm", "0.11.0")),
        ("opt/buildmatrix/pins.json", json.dumps(PINS).encode()),
        # A few more files after the dist-info, as pip leaves them (RECORD, scripts).
        ("usr/local/bin/vllm", b"#!/usr/bin/python3\n"),
    ]
    layers = [
        _write_layer(work / "layer0.tar.gz", first, block, [], small_files),
        _write_layer(work / "layer1.tar.gz", second, block, tail),
    ]
    blobs: dict[str, Path | bytes] = {}
    for (digest, _, _), name in zip(layers, ("layer0.tar.gz", "layer1.tar.gz"), strict=True):
        blobs[digest] = work / name
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": LABELS},
            "rootfs": {"type": "layers", "diff_ids": [d for _, _, d in layers]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    blobs[config_digest] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                for d, s, _ in layers
            ],
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    blobs[manifest_digest] = manifest
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                }
            ],
        }
    ).encode()
    with tarfile.open(target, "w") as archive:
        _add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(archive, "index.json", index)
        for digest, blob in blobs.items():
            name = "blobs/sha256/" + digest.split(":", 1)[1]
            if isinstance(blob, Path):
                archive.add(blob, arcname=name)
                blob.unlink()
            else:
                _add(archive, name, blob)
    work.rmdir()
    return target


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: across fork+exec it
    keeps the parent's peak, which would hide the child's own figure."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, archive: Path) -> None:
    """Run one measurement in this process and print its figures as JSON."""
    started = time.perf_counter()
    extracted = 0
    if mode == "stdlib":
        # The textbook way: tarfile's own stream mode over each layer, reading every
        # header (no extraction). It copies data through its buffers and keeps
        # every TarInfo, so time and memory grow with the layers.
        from buildmatrix.layers import open_image

        found = {}
        with open_image(str(archive)) as (view,):
            for layer in view.layers:
                with view._open_layer(layer) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
                    for member in tar:
                        if member.name.endswith(".dist-info/METADATA"):
                            handle = tar.extractfile(member)
                            assert handle is not None
                            headers = email.parser.HeaderParser().parsestr(handle.read().decode())
                            found[headers["Name"]] = headers["Version"]
        ok = len(found) == 2
    elif mode == "naive":
        from buildmatrix.layers import open_image

        with tempfile.TemporaryDirectory(prefix="verify-bench-naive-", dir=archive.parent) as tmp:
            root = Path(tmp)
            with open_image(str(archive)) as (view,):
                for layer in view.layers:
                    with view._open_layer(layer) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
                        tar.extractall(root, filter="data")
            found = {}
            for metadata in root.glob("usr/local/lib/python3.*/dist-packages/*.dist-info/METADATA"):
                headers = email.parser.HeaderParser().parsestr(metadata.read_text(), headersonly=True)
                found[headers["Name"]] = headers["Version"]
            extracted = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        ok = len(found) == 2
    else:
        from buildmatrix.loader import load_matrix
        from buildmatrix.verify.images import check_image
        from buildmatrix.verify.report import Collector

        collector = Collector()
        matrix = load_matrix(REPO / "matrix.toml")
        check_image(matrix, f"oci-archive:{archive}", None, collector, quick=mode == "quick")
        # Labels, pins file and installed versions (and, in full, the libnixl count) hold.
        ok = not collector.errors and all(c.ok for c in collector.checks) and len(collector.checks) >= 10
    elapsed = time.perf_counter() - started
    peak_mb = _peak_rss_mb()
    print(
        json.dumps({"mode": mode, "seconds": elapsed, "peak_mb": peak_mb, "ok": ok, "extracted": extracted})
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=2.2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--small-files", type=int, default=200_000, help="tiny files in the first layer")
    parser.add_argument("--modes", default="quick,full,stdlib,naive", help="which measurements to run")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ARCHIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return
    free = shutil.disk_usage(args.workdir).free / 1e9
    if free < args.size_gb * 2.5:
        sys.exit(f"need {args.size_gb * 2.5:.1f} GB free in {args.workdir}, have {free:.1f} GB")
    archive = args.workdir / "buildmatrix-verify-bench.oci.tar"
    try:
        started = time.perf_counter()
        build_archive(archive, args.size_gb, args.small_files)
        print(
            f"archive: {archive.stat().st_size / 1e9:.2f} GB, 2 gzip layers, "
            f"{args.small_files} small files + {int(args.size_gb * 1e9 / FILE_SIZE)} 8 MiB files, "
            f"written in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
        for mode in args.modes.split(","):
            # Best of two runs, each in a fresh process: the archive is in the page cache.
            runs = [
                json.loads(
                    subprocess.run(
                        [sys.executable, __file__, "--child", mode, str(archive)],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                for _ in range(2)
            ]
            result = min(runs, key=lambda run: run["seconds"])
            extra = f", extracted {result['extracted'] / 1e9:.2f} GB to disk" if result["extracted"] else ""
            print(
                f"{mode:6s} {result['seconds']:7.1f} s  peak {result['peak_mb']:7.1f} MB"
                f"  ok={result['ok']}{extra}",
                flush=True,
            )
    finally:
        if not args.keep:
            archive.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
