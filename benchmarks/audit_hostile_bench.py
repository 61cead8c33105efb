"""Benchmark: the audit on hostile ELF members, time and peak memory (each in a fresh process).

Every input is a real gcc-built extension with its structures rewritten the way
an attacker would, padded to ``--size`` MiB, in a wheel: a looping version-need
chain, ``e_shnum = 0`` with a tiny entry size or a huge count, overlapping
note sections over the whole file, thousands of program headers each claiming
the whole file, and a ``.dynsym`` claiming a terabyte. Each must come back
``corrupt`` (or at least not ok) within a second and with flat memory (the
target is under 300 MB peak RSS whatever the input).

    python benchmarks/audit_hostile_bench.py [--size 10]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from elftools.elf.elffile import ELFFile

SOURCE = (
    "#include <math.h>\n#include <stdio.h>\n"
    'double f(double x){return log2(x);}\nint hi(void){return puts("hi");}\n'
    "void *PyInit__ext(void){return 0;}\n"
)
MEMBER = "demo/_ext.cpython-311-x86_64-linux-gnu.so"


def build(folder: Path) -> bytes:
    (folder / "ext.c").write_text(SOURCE)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(folder / "ext.so"), str(folder / "ext.c"), "-lm"],
        check=True,
    )
    return (folder / "ext.so").read_bytes()


def section(blob: bytes, name: str) -> tuple[int, int]:
    parsed = ELFFile(io.BytesIO(blob))
    for index, found in enumerate(parsed.iter_sections()):
        if found.name == name:
            return parsed["e_shoff"] + index * parsed["e_shentsize"], found["sh_offset"]
    raise LookupError(name)


def looping_verneed(blob: bytearray) -> None:
    header, data = section(bytes(blob), ".gnu.version_r")
    struct.pack_into("<I", blob, header + 44, 0xFFFFFFFF)
    struct.pack_into("<I", blob, data + 12, 0)


def shnum_zero_tiny_entries(blob: bytearray) -> None:
    struct.pack_into("<H", blob, 0x3C, 0)
    struct.pack_into("<H", blob, 0x3A, 1)


def shnum_zero_huge_count(blob: bytearray) -> None:
    struct.pack_into("<H", blob, 0x3C, 0)
    shoff = struct.unpack_from("<Q", blob, 0x28)[0]
    struct.pack_into("<Q", blob, shoff + 32, 1 << 40)


def overlapping_notes(blob: bytearray) -> None:
    """Every section a loaded note covering the whole file."""
    shoff = struct.unpack_from("<Q", blob, 0x28)[0]
    count = struct.unpack_from("<H", blob, 0x3C)[0]
    for index in range(1, count):
        at = shoff + index * 64
        struct.pack_into("<IQ", blob, at + 4, 7, 2)  # SHT_NOTE, SHF_ALLOC
        struct.pack_into("<QQ", blob, at + 24, 0, len(blob))


def program_headers_everywhere(blob: bytearray) -> None:
    """65535 program headers (at the end of the file), each a PT_NOTE or PT_LOAD of the whole file."""
    phoff = len(blob)
    entries = bytearray()
    for index in range(0xFFFF):
        p_type = 4 if index % 2 else 1
        entries += struct.pack("<IIQQQQQQ", p_type, 4, 0, 0, 0, len(blob), len(blob), 0x1000)
    blob += entries
    struct.pack_into("<Q", blob, 0x20, phoff)
    struct.pack_into("<H", blob, 0x38, 0xFFFF)


def terabyte_dynsym(blob: bytearray) -> None:
    header, _data = section(bytes(blob), ".dynsym")
    struct.pack_into("<Q", blob, header + 32, 1 << 40)


CASES: dict[str, Callable[[bytearray], None]] = {
    "looping version-need chain": looping_verneed,
    "e_shnum 0, entry size 1": shnum_zero_tiny_entries,
    "e_shnum 0, count 2^40": shnum_zero_huge_count,
    "every section a note over the file": overlapping_notes,
    "65535 program headers over the file": program_headers_everywhere,
    ".dynsym of 1 TB": terabyte_dynsym,
}


def wheel_with(folder: Path, name: str, member: bytes) -> Path:
    path = folder / f"{name}-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MEMBER, member)
        archive.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\n")
    return path


def child(wheel: str) -> None:
    from buildmatrix.audit import audit_wheel

    audit_wheel(Path(wheel))  # warm: policy data loaded, modules imported
    start = time.perf_counter()
    audit = audit_wheel(Path(wheel))
    seconds = time.perf_counter() - start
    # VmHWM: this process's own peak (ru_maxrss would count the parent's pages at fork).
    status = Path("/proc/self/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    violations = [[v.kind, v.detail] for v in audit.violations]
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib // 1024, "violations": violations}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10, help="MiB each hostile member is padded to")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    if shutil.which("gcc") is None:
        print("needs gcc", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        sample = build(folder)
        print("| input | member MiB | verdict | audit s | process wall s (2 audits) | peak RSS MiB |")
        print("|---|--:|---|--:|--:|--:|")
        for index, (label, craft) in enumerate(CASES.items()):
            blob = bytearray(sample)
            blob += bytes(max(0, args.size * 2**20 - len(blob)))  # padding after the section headers
            craft(blob)
            wheel = wheel_with(folder, f"case{index}", bytes(blob))
            start = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", str(wheel)], stdout=subprocess.PIPE
            )
            assert process.stdout is not None
            out = process.stdout.read().decode()
            process.wait()
            wall = time.perf_counter() - start
            result = json.loads(out)
            verdict = "; ".join(f"{kind}: {detail[:70]}" for kind, detail in result["violations"]) or "ok"
            print(
                f"| {label} | {len(blob) / 2**20:.1f} | {verdict} | {result['seconds']:.2f} | {wall:.2f} "
                f"| {result['peak_mib']} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
