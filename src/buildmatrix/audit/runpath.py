"""Keep a wheel's run paths inside the wheel: drop RPATH/RUNPATH entries that leave it.

A build on this machine can leave the build machine's folders in an ELF run
path (a Python installation's ``lib`` folder from its ``LDFLAGS``, a
``-Wl,-rpath`` of a vendored library). On a user's machine such a folder does
not exist, or someone else can write to it, and the loader searches it before
the system. ``auditwheel repair`` rewrites the run path only of the files it
grafts libraries for, so the local backend runs this after it::

    python -m buildmatrix.audit.runpath WHEEL

Entries using ``$ORIGIN`` stay (they move with the installed files); every
other entry is dropped with ``patchelf`` (``--remove-rpath`` when none is
left). The wheel is rewritten in place, atomically, with the same member
order, timestamps and compression, and RECORD updated for the files changed,
so the same input gives the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from buildmatrix._call import call
from buildmatrix.audit.elf import ElfError, read_elf

__all__ = ["confine_run_paths", "main", "outside_entries"]


def outside_entries(value: str | None) -> list[str]:
    """The entries of a run path that do not stay inside the wheel (no ``$ORIGIN``)."""
    if not value:
        return []
    return [entry for entry in value.split(":") if "$ORIGIN" not in entry and "${ORIGIN}" not in entry]


def _confined(data: bytes, folder: Path) -> bytes | None:
    """``data`` with its outside run path entries dropped; None when it needs no change."""
    try:
        info = read_elf(io.BytesIO(data), lambda: io.BytesIO(data))
    except ElfError:
        return None  # not ours to repair; the audit reports it
    if info is None:
        return None
    bad = outside_entries(info.rpath) + outside_entries(info.runpath)
    if not bad:
        return None
    value = info.runpath if info.runpath is not None else info.rpath
    kept = [e for e in (value or "").split(":") if e and e not in outside_entries(value)]
    path = folder / "elf"
    path.write_bytes(data)
    call("patchelf", "--remove-rpath", path, echo=False)  # both tags; the loader reads RUNPATH first
    if kept:
        force = [] if info.runpath is not None else ["--force-rpath"]  # an RPATH stays an RPATH
        call("patchelf", *force, "--set-rpath", ":".join(kept), path, echo=False)
    return path.read_bytes()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def confine_run_paths(wheel: Path) -> list[str]:
    """Rewrite ``wheel`` so no ELF member's run path leaves it; the members changed."""
    changed: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as scratch:
        infos = archive.infolist()
        for info in infos:
            if info.is_dir() or info.filename.endswith(".py"):
                continue
            with archive.open(info) as stream:
                if stream.read(4) != b"\x7fELF":
                    continue
            fixed = _confined(archive.read(info), Path(scratch))
            if fixed is not None:
                changed[info.filename] = fixed
        if not changed:
            return []
        record_name = next((i.filename for i in infos if i.filename.endswith(".dist-info/RECORD")), None)
        fd, temporary = tempfile.mkstemp(dir=wheel.parent, suffix=".whl.part")
        os.close(fd)
        try:
            with zipfile.ZipFile(temporary, "w") as out:
                for info in infos:
                    if info.filename == record_name:
                        data = _updated_record(archive.read(info), changed)
                    else:
                        data = changed.get(info.filename) or archive.read(info)
                    out.writestr(info, data, compress_type=info.compress_type)
            Path(temporary).replace(wheel)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return sorted(changed)


def _updated_record(record: bytes, changed: dict[str, bytes]) -> bytes:
    rows = list(csv.reader(io.StringIO(record.decode())))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        if row and row[0] in changed:
            data = changed[row[0]]
            writer.writerow([row[0], _record_hash(data), str(len(data))])
        else:
            writer.writerow(row)
    return out.getvalue().encode()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m buildmatrix.audit.runpath WHEEL", file=sys.stderr)
        return 2
    for member in confine_run_paths(Path(args[0])):
        print(f"run path confined to the wheel: {member}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
