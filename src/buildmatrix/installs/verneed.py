"""The GLIBC versions an ELF file needs, from as little of its front as possible.

A wheel member is a deflate stream: reading its section headers (at the end)
means inflating all of it. The version-need table (``.gnu.version_r``) sits in
the first loadable segment, right after the dynamic symbol and string tables,
so this scanner inflates only until it has seen a complete, well-formed
version-need chain and stops there. Its entries are recognised by structure
(``vn_version == 1``, ``vn_aux == 16``, a ``vn_next`` chain ending in 0,
auxiliary entries with distinct version indexes) and the GLIBC versions by the
entries' ``vna_hash``: the ELF hash the dynamic loader itself compares, so the
table's string data (which patchelf moves to the end of a repaired library) is
never needed. ``GLIBC_ABI_DT_RELR`` means glibc 2.36, as in auditwheel.

When no chain turns up inside the first loadable segment (big-endian or 32-bit
files, unusual layouts, files needing no versions), the caller reads the whole
member with ``buildmatrix.audit.elf`` instead, which finds the table by its
section header and names.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from packaging.version import Version

__all__ = ["GLIBC_BY_HASH", "NeedScanner", "elf_hash", "glibc_of_version_name"]

EM_BY_ARCH = {"x86_64": 62, "aarch64": 183, "ppc64le": 21, "s390x": 22, "i686": 3, "armv7l": 40}
PT_LOAD, PF_X = 1, 0x1
DT_RELR_VERSION = "GLIBC_ABI_DT_RELR"
DT_RELR_GLIBC = Version("2.36")  # the glibc that introduced DT_RELR (auditwheel's mapping)
KEEP_BEHIND = 8 << 20  # scanned bytes kept before they are dropped
MAX_AUX = 256  # versions one library entry may list
MAX_AUX_OFFSET = 1 << 16  # vn_aux: GNU ld puts the entries' versions right after each (16);
# lld puts every entry first and all versions after them (16 * entries + ...)
_CANDIDATE = re.compile(
    rb"\x01\x00[\x01-\xff]\x00....(?:[\x10-\xff][\x00-\xff]|[\x00-\x0f][\x01-\xff])\x00\x00", re.DOTALL
)


def elf_hash(name: bytes) -> int:
    """The System V ELF hash (what ``vna_hash`` holds)."""
    value = 0
    for byte in name:
        value = ((value << 4) + byte) & 0xFFFFFFFF
        high = value & 0xF0000000
        if high:
            value ^= high >> 24
        value &= ~high & 0xFFFFFFFF
    return value


def _glibc_names() -> list[str]:
    names = [f"GLIBC_2.{minor}" for minor in range(61)]
    names += [f"GLIBC_2.{minor}.{patch}" for minor in range(6) for patch in range(10)]
    return [*names, DT_RELR_VERSION]


def glibc_of_version_name(name: str) -> Version | None:
    """``GLIBC_2.29`` -> 2.29; ``GLIBC_ABI_DT_RELR`` -> 2.36; anything else None."""
    if name == DT_RELR_VERSION:
        return DT_RELR_GLIBC
    if name.startswith("GLIBC_2."):
        try:
            return Version(name.removeprefix("GLIBC_"))
        except ValueError:
            return None
    return None


GLIBC_BY_HASH: dict[int, str] = {elf_hash(name.encode()): name for name in _glibc_names()}
assert len(GLIBC_BY_HASH) == len(_glibc_names()), "GLIBC version names collide in the ELF hash"


@dataclass(frozen=True, slots=True)
class Needs:
    """What the version-need chain says: GLIBC version names it needs, and how it was read."""

    versions: tuple[str, ...]  # "GLIBC_2.29", sorted
    unknown_hashes: int  # entries whose hash is no GLIBC version (GLIBCXX_, GCC_, ...)

    @property
    def glibc(self) -> Version | None:
        found = [v for v in (glibc_of_version_name(n) for n in self.versions) if v is not None]
        return max(found) if found else None


class NeedScanner:
    """Fed a member's bytes in order; says when it has the version needs or must give up.

    ``state`` is ``"more"`` (feed more), ``"found"`` (``needs`` is set),
    ``"not-elf"``, ``"other-arch"`` (an ELF file for another CPU, skipped as
    auditwheel does) or ``"fallback"`` (read the whole member the slow way).
    """

    def __init__(self, arch: str) -> None:
        self.machine = EM_BY_ARCH.get(arch)
        self.data = bytearray()
        self.state = "more"
        self.needs: Needs | None = None
        self.limit: int | None = None  # scan no further than this offset
        self.scanned = 0  # candidates before this offset were tried
        self.base = 0  # the file offset of data[0]: bytes already scanned are dropped

    def feed(self, chunk: bytes) -> str:
        if self.state != "more":
            return self.state
        self.data += chunk
        if self.limit is None:
            self._header()
        if self.state == "more" and self.limit is not None:
            self._scan()
        return self.state

    def finish(self) -> str:
        """The member ended: whatever was not found is a fallback (or not an ELF file)."""
        if self.state == "more":
            if len(self.data) < 4 or self.data[:4] != b"\x7fELF":
                self.state = "not-elf"
            else:
                self.state = "fallback"
        return self.state

    def _header(self) -> None:
        data = self.data
        if len(data) >= 4 and data[:4] != b"\x7fELF":
            self.state = "not-elf"
            return
        if len(data) < 64:
            return
        if data[4] != 2 or data[5] != 1:  # only 64-bit little-endian takes the fast path
            self.state = "fallback"
            return
        machine = struct.unpack_from("<H", data, 18)[0]
        if self.machine is not None and machine != self.machine:
            self.state = "other-arch"
            return
        (phoff,) = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        end = phoff + phentsize * phnum
        if phentsize < 56 or phnum == 0 or end > 1 << 20:
            self.state = "fallback"
            return
        if len(data) < end:
            return
        loads = []
        for index in range(phnum):
            p_type, p_flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
                "<IIQQQQ", data, phoff + index * phentsize
            )
            if p_type == PT_LOAD:
                loads.append((p_offset, p_filesz, p_flags))
        if not loads:
            self.state = "fallback"
            return
        loads.sort()
        offset, filesz, _flags = loads[0]
        self.limit = offset + filesz
        self.scanned = end

    def _scan(self) -> None:
        assert self.limit is not None
        data, base = self.data, self.base
        stop = min(base + len(data), self.limit)
        for match in _CANDIDATE.finditer(data, self.scanned - base, stop - base):
            at = match.start()
            if (base + at) % 4:
                continue
            result = _chain(data, at)
            if result == "short":
                self.scanned = base + at  # try again with more data
                return
            if isinstance(result, Needs):
                self.needs = result
                self.state = "found"
                return
        self.scanned = max(self.scanned, stop - 16)
        if base + len(data) >= self.limit:
            self.state = "fallback"
        elif self.scanned - base > KEEP_BEHIND:  # memory stays bounded on huge segments
            drop = self.scanned - base
            del self.data[:drop]
            self.base += drop


def _chain(data: bytearray, start: int) -> Needs | str | None:  # noqa: PLR0911 (one return per rule)
    """Needs when a well-formed version-need chain starts at ``start``; "short" for more data."""
    versions: set[str] = set()
    indexes: set[int] = set()
    unknown = 0
    at = start
    for _ in range(4096):
        if at + 16 > len(data):
            return "short"
        version, count, _file, aux, next_entry = struct.unpack_from("<HHIII", data, at)
        if version != 1 or not 0 < count <= MAX_AUX or not 16 <= aux < MAX_AUX_OFFSET or aux % 4:
            return None
        if next_entry % 4 or (next_entry and next_entry < 16):
            return None
        where = at + aux
        for number in range(count):
            if where + 16 > len(data):
                return "short"
            hash_, flags, other, _name, next_aux = struct.unpack_from("<IHHII", data, where)
            last = number == count - 1
            if flags not in (0, 2) or not 2 <= other <= 0x7FFF or other in indexes:
                return None
            if (next_aux != 0) if last else (next_aux != 16):
                return None
            indexes.add(other)
            name = GLIBC_BY_HASH.get(hash_)
            if name is None:
                unknown += 1
            else:
                versions.add(name)
            where += 16
        if not next_entry:
            break
        at += next_entry
    else:
        return None
    if not versions:
        return None  # a chain needing no GLIBC version at all: let the full read confirm it
    return Needs(
        tuple(sorted(versions, key=lambda n: (glibc_of_version_name(n) or Version("0"), n))), unknown
    )
