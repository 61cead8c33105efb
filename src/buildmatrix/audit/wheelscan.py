"""Open wheels and stream their members' ELF facts, in parallel, biggest member first.

Nothing is extracted: each candidate member (every file but ``*.py``, as
auditwheel tries them) is read front to back by ``buildmatrix.audit.elf`` straight
from the zip, inflated by ``buildmatrix.audit.inflate`` (ISA-L or zlib-ng when
installed; threads share one descriptor per wheel, inflating and CRC checks run
outside the GIL). Every copy of a member is read: a zip may hold the same name
twice, and an installer keeps only one of them. Member names that would land
outside an unpacked wheel are collected for the report and never used as paths.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from buildmatrix.audit.elf import ELF_MAGIC, ElfError, ElfInfo, read_elf
from buildmatrix.audit.inflate import MemberReader

__all__ = ["MemberResult", "OpenWheel", "member_is_unsafe", "scan_wheels"]

# An ELF member this big that deflated this well is a zip bomb: inflating it
# would only cost time (memory stays bounded), and no compiler writes it.
BOMB_SIZE = 1 << 30
BOMB_RATIO = 100


@dataclass(frozen=True)
class MemberResult:
    info: ElfInfo | None = None
    error: str | None = None


@dataclass
class OpenWheel:
    path: Path
    archive: zipfile.ZipFile | None
    members: list[str] = field(default_factory=list)  # every file member, copies included
    unsafe: list[str] = field(default_factory=list)
    error: str | None = None
    # (member, its read) for every candidate copy, in zip order
    reads: list[tuple[str, Future[MemberResult]]] = field(default_factory=list)
    fd: int = -1


def _read_member(archive: zipfile.ZipFile, fd: int, info: zipfile.ZipInfo) -> MemberResult:
    def reopen() -> IO[bytes]:
        if MemberReader.supported(info):
            return MemberReader(fd, info)  # type: ignore[return-value]
        return archive.open(info)

    try:
        with reopen() as stream:
            if info.file_size > BOMB_SIZE and info.file_size > BOMB_RATIO * max(1, info.compress_size):
                if stream.read(4) != ELF_MAGIC:
                    return MemberResult()  # data, not code: not ours to judge
                ratio = info.file_size // max(1, info.compress_size)
                msg = (
                    f"a zip bomb: {info.file_size} bytes deflated {ratio}:1 (real code stays "
                    f"under {BOMB_RATIO}:1); not inflated"
                )
                return MemberResult(error=msg)
            elf = read_elf(stream, reopen)
            if elf is None:
                return MemberResult()
            return MemberResult(info=elf)
    except ElfError as error:
        return MemberResult(error=f"not a readable ELF file: {error}")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        return MemberResult(error=f"cannot read the member: {error}")
    except Exception as error:  # one bad member must never stop the others
        return MemberResult(error=f"cannot analyse the member: {type(error).__name__}: {error}")


def _open_wheel(path: Path, stack: ExitStack) -> tuple[OpenWheel, list[zipfile.ZipInfo]]:
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
        infos = archive.infolist()
        fd = os.open(path, os.O_RDONLY)
        stack.callback(os.close, fd)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        return OpenWheel(path, None, error=f"not a readable zip file: {error}"), []
    opened = OpenWheel(path, archive, fd=fd)
    candidates = []
    for info in infos:
        name = info.filename
        if member_is_unsafe(name):
            opened.unsafe.append(name)
        if info.is_dir():
            continue
        opened.members.append(name)
        if not name.endswith(".py"):  # auditwheel tries every other file as ELF
            candidates.append(info)
    return opened, candidates


def scan_wheels(paths: Sequence[Path], jobs: int | None, stack: ExitStack) -> Iterator[OpenWheel]:
    """Open every wheel and start reading all candidate members, biggest first."""
    workers = jobs or len(os.sched_getaffinity(0)) or 1
    wheels: list[OpenWheel] = []
    work: list[tuple[OpenWheel, int, zipfile.ZipInfo]] = []
    for path in paths:
        opened, candidates = _open_wheel(path, stack)
        wheels.append(opened)
        work.extend((opened, position, info) for position, info in enumerate(candidates))
    # Entered after the wheels: on the way out the threads stop before any descriptor closes.
    pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers))
    # Longest first: one huge member started last would leave the other cores idle.
    work.sort(key=lambda item: item[2].compress_size, reverse=True)
    started: dict[int, list[tuple[int, str, Future[MemberResult]]]] = {}
    for opened, position, info in work:
        assert opened.archive is not None
        future = pool.submit(_read_member, opened.archive, opened.fd, info)
        started.setdefault(id(opened), []).append((position, info.filename, future))
    for opened in wheels:
        opened.reads = [(name, future) for _p, name, future in sorted(started.get(id(opened), []))]
    yield from wheels


def member_is_unsafe(name: str) -> bool:
    """A member name that would land outside the folder a wheel is unpacked into."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        return True
    return ".." in name.split("/")
