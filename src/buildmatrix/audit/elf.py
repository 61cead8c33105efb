"""Read the dynamic-linking facts of an ELF file from a forward-only stream.

Wheels are zip files; a deflated member can only be read front to back, and
seeking backwards means inflating again from the start. So this reader never
seeks: it reads the ELF header and program headers first, decides which byte
ranges may hold what it needs (the first loadable segment, where linkers put
``.dynsym``, ``.dynstr`` and the version tables; the dynamic, interpreter and
note segments; the section header table), keeps only those while the rest of
the member streams past, and parses them at the end. An unusual layout whose
tables fall outside the kept ranges costs a second pass over the member,
reading exactly the missing ranges. Memory stays bounded by the kept ranges,
never the size of the member.

The facts match what auditwheel reads with pyelftools: sections are found by
type (``SHT_DYNSYM``, ``SHT_GNU_verneed``, ``SHT_GNU_versym``, ``SHT_NOTE``),
dynamic tags come from the ``PT_DYNAMIC`` segment.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO

__all__ = ["ELF_MAGIC", "ElfError", "ElfInfo", "read_elf"]

ELF_MAGIC = b"\x7fELF"
CHUNK = 8 << 20  # read size: few GIL round trips per member; zlib works outside the GIL
PREFIX_CAP = 24 << 20  # most of the first or last PT_LOAD we keep speculatively
SEGMENT_CAP = 16 << 20  # other non-executable PT_LOADs up to this size are kept too
PF_X = 0x1
SECTION_CAP = 256 << 20  # a table bigger than this is not a real dynsym/strtab
# Bounds that keep memory flat whatever the input (the audit reads members on
# every core at once): speculative keeps per member, and the tables parsed.
# The largest real tables seen (libtorch_cpu: 1.7 MB .dynsym, 5 MB .dynstr) are far
# below these; tables past the speculative keeps cost a second pass, not memory.
SPECULATIVE_BUDGET = 24 << 20
TABLE_BUDGET = 48 << 20  # dynamic segment, section headers, dynsym/dynstr/version tables
EXTENDED_SECTIONS_KEPT = 16 << 20  # e_shnum 0: the count is in section 0; a table this big at most
NOTE_CAP = 1 << 16  # real files carry a handful of notes (build id, ABI tag, properties, probes)

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
# Real segments are a few kB; these are far above any linker's output.
SEGMENT_CAPS = {PT_DYNAMIC: 4 << 20, PT_INTERP: 64 << 10, PT_NOTE: 16 << 20}
SHT_DYNAMIC, SHT_NOTE, SHT_NOBITS, SHT_DYNSYM = 6, 7, 8, 11
SHF_ALLOC = 0x2
TAIL_WINDOW = 1 << 20  # kept before the section headers: where non-loaded notes usually sit
SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002
STT_NOTYPE, STT_FUNC = 0, 2
STB_WEAK = 2

# Symbols whose definition makes a file a Python extension module, by prefix
# (the module name follows); the value is the Python major version.
MODULE_INIT_PREFIXES = {"init": 2, "PyInit_": 3, "_cffi_pypyinit_": 2}
PYFPE_SYMBOLS = frozenset({"PyFPE_jbuf", "PyFPE_dummy", "PyFPE_counter"})


class ElfError(Exception):
    """The file starts like an ELF file but its structures cannot be read."""


@dataclass(frozen=True, slots=True)
class ElfInfo:
    """What the audit needs to know about one ELF file."""

    elf_class: int  # 32 | 64
    little_endian: bool
    osabi: int
    machine: int  # e_machine
    flags: int  # e_flags
    interpreter: str | None
    needed: tuple[str, ...]
    soname: str | None
    rpath: str | None  # DT_RPATH as written (colon-separated)
    runpath: str | None
    # (library, version) pairs from .gnu.version_r, in file order.
    version_needs: tuple[tuple[str, str], ...]
    # version name -> sorted undefined symbols bound to it ("log2" for GLIBC_2.29)
    symbols_by_version: dict[str, tuple[str, ...]] = field(hash=False)
    undefined: frozenset[str]  # undefined, non-weak dynamic symbols
    defined_functions: frozenset[str]  # defined STT_FUNC names that look like module inits
    pyfpe: bool  # references PyFPE_jbuf & co (a pre-3.x fpectl build)
    ucs2: bool  # references PyUnicodeUCS2_* functions (a narrow-unicode Python 2 build)
    # GNU_PROPERTY_X86_ISA_1_NEEDED values, in the order auditwheel visits them
    x86_isa_needed: tuple[int, ...]

    def python_module_version(self, module: str) -> int | None:
        """The Python major version if this file defines ``module``'s init function."""
        for prefix, major in MODULE_INIT_PREFIXES.items():
            if prefix + module in self.defined_functions:
                return major
        return None


@dataclass(frozen=True, slots=True)
class _Layout:
    elf_class: int
    endian: str  # "<" | ">"
    osabi: int
    machine: int
    flags: int
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int


class _Kept:
    """Byte ranges of the file kept while it streams past."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytearray]] = []

    def get(self, offset: int, size: int) -> bytes | None:
        view = self.view(offset, size)
        return None if view is None else bytes(view)

    def view(self, offset: int, size: int) -> memoryview | None:
        """The range without a copy (for tables walked, not searched)."""
        if size == 0:
            return memoryview(b"")
        for start, data in self.pieces:
            if start <= offset and offset + size <= start + len(data):
                return memoryview(data)[offset - start : offset - start + size]
        return None


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class _Reader:
    """A forward-only cursor over a stream that keeps chosen ranges."""

    def __init__(self, stream: IO[bytes], head: bytes = b"") -> None:
        self.stream = stream
        self.position = 0
        self.buffer = head  # bytes already read from position `position`

    def _next_chunk(self) -> bytes:
        if self.buffer:
            chunk, self.buffer = self.buffer, b""
            return chunk
        return self.stream.read(CHUNK)

    def keep(self, ranges: list[tuple[int, int]], kept: _Kept, *, to_end: bool) -> int:
        """Stream on, copying ``ranges`` (merged, sorted) into ``kept``.

        Stops after the last range, or at the end of the stream when ``to_end``
        (which also lets the zip layer check the member's CRC). Returns the
        stream position reached.
        """
        pending = [r for r in _merge(ranges) if r[1] > self.position]
        parts: dict[int, tuple[int, bytearray]] = {}  # range start -> (first byte kept, data)
        while pending or to_end:
            chunk = self._next_chunk()
            if not chunk:
                break
            chunk_start, chunk_end = self.position, self.position + len(chunk)
            for start, end in pending:
                if start >= chunk_end:
                    break
                if end <= chunk_start:
                    continue
                lo, hi = max(start, chunk_start), min(end, chunk_end)
                piece = parts.setdefault(start, (lo, bytearray()))[1]
                piece += memoryview(chunk)[lo - chunk_start : hi - chunk_start]
            self.position = chunk_end
            done = [r for r in pending if r[1] <= chunk_end]
            pending = [r for r in pending if r[1] > chunk_end]
            if not pending and not to_end:
                keep_tail = chunk[max(0, done[-1][1] - chunk_start) :] if done else b""
                self.buffer = keep_tail
                self.position = chunk_end - len(keep_tail)
                break
        kept.pieces.extend(parts.values())
        return self.position


def read_elf(stream: IO[bytes], reopen: Callable[[], IO[bytes]] | None = None) -> ElfInfo | None:
    """Parse the ELF file on ``stream``; None when it is not an ELF file.

    ``reopen`` returns a fresh stream of the same file for the rare second
    pass; without it a layout that needs one raises ``ElfError``.
    Raises ``ElfError`` for a file that starts with the ELF magic but is
    malformed or truncated.
    """
    head = stream.read(64)
    if head[:4] != ELF_MAGIC:
        return None
    try:
        return _read(stream, head, reopen)
    except (struct.error, IndexError, OverflowError) as error:
        # Field values no well-formed file has: report them like any other damage.
        msg = f"malformed ELF structures: {error}"
        raise ElfError(msg) from None


def _read(stream: IO[bytes], head: bytes, reopen: Callable[[], IO[bytes]] | None) -> ElfInfo:
    layout = _parse_header(head)
    reader = _Reader(stream, head)
    kept = _Kept()
    header_end = layout.phoff + layout.phentsize * layout.phnum
    reader.keep([(0, max(64, header_end))], kept, to_end=False)
    phdrs = _program_headers(layout, kept)
    loads = [p for p in phdrs if p[0] == PT_LOAD]
    wanted: list[tuple[int, int]] = []
    if loads:
        # Linkers put .dynsym/.dynstr/.gnu.version* in the first PT_LOAD; patchelf
        # moves a rewritten .dynstr into a new last one; small read-only or data
        # segments cost little to keep. Executable and huge segments stream past.
        ordered = sorted(loads, key=lambda p: p[1])
        budget = SPECULATIVE_BUDGET
        edges = [ordered[0], ordered[-1]] if len(ordered) > 1 else ordered
        others = [p for p in ordered[1:-1] if not p[3] & PF_X and p[4] <= SEGMENT_CAP]
        for _type, p_offset, _vaddr, _flags, p_filesz in [*edges, *others]:
            take = min(p_filesz, PREFIX_CAP, budget)
            if take <= 0:
                break  # a second pass reads whatever the tables still need
            wanted.append((p_offset, p_offset + take))
            budget -= take
    for p_type, p_offset, _vaddr, _flags, p_filesz in phdrs:
        if p_type in SEGMENT_CAPS:
            if p_filesz > SEGMENT_CAPS[p_type]:
                msg = f"implausible segment size {p_filesz} (type {p_type})"
                raise ElfError(msg)
            wanted.append((p_offset, p_offset + p_filesz))
    if layout.shoff:
        wanted.append((max(0, layout.shoff - TAIL_WINDOW), layout.shoff))
        if layout.shnum * layout.shentsize > SECTION_CAP:
            msg = f"implausible section header table ({layout.shnum} x {layout.shentsize})"
            raise ElfError(msg)
        if layout.shnum:
            wanted.append((layout.shoff, layout.shoff + layout.shnum * layout.shentsize))
        else:  # more than 0xff00 sections: the count lives in section 0
            wanted.append((layout.shoff, layout.shoff + EXTENDED_SECTIONS_KEPT))
    size = reader.keep(wanted, kept, to_end=True)
    sections = _section_headers(layout, kept, size)
    missing = _missing_ranges(layout, phdrs, sections, kept, size)
    if missing:
        if reopen is None:
            msg = "ELF tables lie outside the ranges read in one pass"
            raise ElfError(msg)
        with reopen() as again:
            _Reader(again).keep(missing, kept, to_end=False)
    return _parse(layout, phdrs, sections, kept, size)


def _parse_header(head: bytes) -> _Layout:
    if len(head) < 52:
        msg = "truncated ELF header"
        raise ElfError(msg)
    elf_class = {1: 32, 2: 64}.get(head[4])
    endian = {1: "<", 2: ">"}.get(head[5])
    if elf_class is None or endian is None:
        msg = f"bad ELF class/data bytes {head[4]}/{head[5]}"
        raise ElfError(msg)
    osabi = head[7]
    if elf_class == 64:
        if len(head) < 64:
            msg = "truncated ELF header"
            raise ElfError(msg)
        fields = struct.unpack_from(endian + "HHIQQQIHHHHHH", head, 16)
    else:
        fields = struct.unpack_from(endian + "HHIIIIIHHHHHH", head, 16)
    _type, machine, _version, _entry, phoff, shoff, flags = fields[:7]
    _ehsize, phentsize, phnum, shentsize, shnum, _shstrndx = fields[7:]
    expected_ph, expected_sh = (56, 64) if elf_class == 64 else (32, 40)
    if phnum and not expected_ph <= phentsize <= 1024:
        msg = f"bad program header entry size {phentsize}"
        raise ElfError(msg)
    if shoff and not expected_sh <= shentsize <= 1024:
        msg = f"bad section header entry size {shentsize}"
        raise ElfError(msg)
    return _Layout(elf_class, endian, osabi, machine, flags, phoff, phentsize, phnum, shoff, shentsize, shnum)


# (p_type, p_offset, p_vaddr, p_flags, p_filesz)
_Phdr = tuple[int, int, int, int, int]
# (sh_type, sh_offset, sh_size, sh_link, sh_info, sh_entsize, sh_flags)
_Shdr = tuple[int, int, int, int, int, int, int]


def _program_headers(layout: _Layout, kept: _Kept) -> list[_Phdr]:
    if not layout.phnum:
        return []
    table = kept.get(layout.phoff, layout.phentsize * layout.phnum)
    if table is None:
        msg = "truncated program header table"
        raise ElfError(msg)
    result: list[_Phdr] = []
    for index in range(layout.phnum):
        at = index * layout.phentsize
        if layout.elf_class == 64:
            p_type, p_flags, p_offset, p_vaddr, _p, p_filesz, _m, _a = struct.unpack_from(
                layout.endian + "IIQQQQQQ", table, at
            )
        else:
            p_type, p_offset, p_vaddr, _p, p_filesz, _m, p_flags, _a = struct.unpack_from(
                layout.endian + "IIIIIIII", table, at
            )
        result.append((p_type, p_offset, p_vaddr, p_flags, p_filesz))
    return result


def _section_headers(layout: _Layout, kept: _Kept, size: int) -> list[_Shdr]:
    if not layout.shoff:
        return []
    count = layout.shnum
    entry = "IIQQQQIIQQ" if layout.elf_class == 64 else "IIIIIIIIII"
    if count == 0:
        first = kept.get(layout.shoff, layout.shentsize)
        if first is None:
            msg = "truncated section header table"
            raise ElfError(msg)
        count = struct.unpack_from(layout.endian + entry, first)[5]
    if layout.shoff + count * layout.shentsize > size or count * layout.shentsize > SECTION_CAP:
        msg = (
            f"section header table ({count} x {layout.shentsize} at {layout.shoff}) "
            f"runs past the end of the file ({size} bytes)"
        )
        raise ElfError(msg)
    table = kept.get(layout.shoff, count * layout.shentsize)
    if table is None:
        msg = "truncated section header table"
        raise ElfError(msg)
    result: list[_Shdr] = []
    for index in range(count):
        _n, sh_type, sh_flags, _addr, sh_offset, sh_size, sh_link, sh_info, _al, sh_entsize = (
            struct.unpack_from(layout.endian + entry, table, index * layout.shentsize)
        )
        if sh_type == SHT_NOBITS:
            sh_size = 0  # occupies no bytes of the file
        result.append((sh_type, sh_offset, sh_size, sh_link, sh_info, sh_entsize, sh_flags))
    return result


def _wanted_sections(sections: list[_Shdr]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for sh_type, sh_offset, sh_size, sh_link, _info, _ent, sh_flags in sections:
        if sh_type == SHT_NOTE and not sh_flags & SHF_ALLOC:
            # Notes that are not loaded (.note.stapsdt, ...) never carry the GNU
            # property note; read them when kept anyway, never pay a pass for them.
            continue
        if sh_type in (SHT_DYNSYM, SHT_GNU_VERNEED, SHT_GNU_VERSYM, SHT_NOTE):
            ranges.append((sh_offset, sh_offset + sh_size))
            if sh_type in (SHT_DYNSYM, SHT_GNU_VERNEED) and sh_link < len(sections):
                link = sections[sh_link]
                ranges.append((link[1], link[1] + link[2]))
    return ranges


def _dynamic_strtab(layout: _Layout, phdrs: list[_Phdr], kept: _Kept) -> tuple[int, int] | None:
    """File range of the dynamic string table, from DT_STRTAB/DT_STRSZ."""
    entries = _dynamic_entries(layout, phdrs, kept)
    address = next((value for tag, value in entries if tag == DT_STRTAB), None)
    size = next((value for tag, value in entries if tag == DT_STRSZ), None)
    if address is None:
        return None
    offset = _address_to_offset(phdrs, address)
    if offset is None:
        return None
    return (offset, offset + (size if size is not None else 0))


def _missing_ranges(
    layout: _Layout, phdrs: list[_Phdr], sections: list[_Shdr], kept: _Kept, size: int
) -> list[tuple[int, int]]:
    wanted = _wanted_sections(sections)
    strtab = _dynamic_strtab(layout, phdrs, kept)
    if strtab is not None:
        wanted.append(strtab)
    missing = []
    total = sum(end - start for start, end in _merge(wanted))
    if total > TABLE_BUDGET:
        msg = f"implausible dynamic tables: {total} bytes in all"
        raise ElfError(msg)
    for start, end in wanted:
        if end - start > SECTION_CAP:
            msg = f"implausible table size {end - start} at offset {start}"
            raise ElfError(msg)
        if end > size:
            msg = f"a table at {start}..{end} runs past the end of the file ({size} bytes)"
            raise ElfError(msg)
        if kept.get(start, end - start) is None:
            missing.append((start, end))
    return missing


def _address_to_offset(phdrs: list[_Phdr], address: int) -> int | None:
    for p_type, p_offset, p_vaddr, _flags, p_filesz in phdrs:
        if p_type == PT_LOAD and p_vaddr <= address < p_vaddr + p_filesz:
            return address - p_vaddr + p_offset
    return None


def _dynamic_entries(layout: _Layout, phdrs: list[_Phdr], kept: _Kept) -> list[tuple[int, int]]:
    dynamic = next((p for p in phdrs if p[0] == PT_DYNAMIC), None)
    if dynamic is None:
        return []
    data = kept.get(dynamic[1], dynamic[4])
    if data is None:
        msg = "truncated dynamic segment"
        raise ElfError(msg)
    fmt = layout.endian + ("qQ" if layout.elf_class == 64 else "iI")
    step = struct.calcsize(fmt)
    entries = []
    for tag, value in struct.iter_unpack(fmt, data[: len(data) - len(data) % step]):
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    return entries


def _string(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        msg = f"string offset {offset} outside its table"
        raise ElfError(msg)
    return table[offset:end].decode("utf-8", "surrogateescape")


def _section_data(kept: _Kept, section: _Shdr) -> bytes:
    data = kept.get(section[1], section[2])
    if data is None:
        msg = f"section at {section[1]} was not read"
        raise ElfError(msg)
    return data


def _parse(layout: _Layout, phdrs: list[_Phdr], sections: list[_Shdr], kept: _Kept, size: int) -> ElfInfo:
    dynamic = _dynamic_names(layout, phdrs, kept)
    by_type: dict[int, _Shdr] = {}
    for section in sections:
        by_type.setdefault(section[0], section)
    version_needs, version_index = _version_needs(layout, sections, by_type, kept)
    symbols = _symbols(layout, sections, by_type, kept, version_index)
    return ElfInfo(
        elf_class=layout.elf_class,
        little_endian=layout.endian == "<",
        osabi=layout.osabi,
        machine=layout.machine,
        flags=layout.flags,
        interpreter=_interpreter(phdrs, kept),
        needed=tuple(dynamic.needed),
        soname=dynamic.soname,
        rpath=dynamic.rpath,
        runpath=dynamic.runpath,
        version_needs=tuple(version_needs),
        symbols_by_version=symbols.by_version,
        undefined=frozenset(symbols.undefined),
        defined_functions=frozenset(symbols.init_functions),
        pyfpe=symbols.pyfpe,
        ucs2=symbols.ucs2,
        x86_isa_needed=_x86_isa_needed(layout, sections, kept),
    )


def _interpreter(phdrs: list[_Phdr], kept: _Kept) -> str | None:
    """The PT_INTERP path (the program loader an executable names)."""
    for p_type, p_offset, _vaddr, _flags, p_filesz in phdrs:
        if p_type == PT_INTERP:
            data = kept.get(p_offset, p_filesz)
            if data is None:
                msg = "truncated interpreter segment"
                raise ElfError(msg)
            return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return None


@dataclass
class _DynamicNames:
    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None


def _dynamic_names(layout: _Layout, phdrs: list[_Phdr], kept: _Kept) -> _DynamicNames:
    """DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH, from the dynamic segment."""
    names = _DynamicNames()
    entries = _dynamic_entries(layout, phdrs, kept)
    if not entries:
        return names
    strtab_range = _dynamic_strtab(layout, phdrs, kept)
    if strtab_range is None:
        msg = "dynamic segment without a string table"
        raise ElfError(msg)
    strtab = kept.get(strtab_range[0], strtab_range[1] - strtab_range[0])
    if strtab is None:
        msg = "dynamic string table was not read"
        raise ElfError(msg)
    for tag, value in entries:
        if tag == DT_NEEDED:
            names.needed.append(_string(strtab, value))
        elif tag == DT_SONAME:
            names.soname = _string(strtab, value)
        elif tag == DT_RPATH:
            names.rpath = _string(strtab, value)
        elif tag == DT_RUNPATH:
            names.runpath = _string(strtab, value)
    return names


def _version_needs(
    layout: _Layout, sections: list[_Shdr], by_type: dict[int, _Shdr], kept: _Kept
) -> tuple[list[tuple[str, str]], dict[int, str]]:
    """(library, version) pairs, and version index -> version name for versym."""
    section = by_type.get(SHT_GNU_VERNEED)
    if section is None:
        return [], {}
    data = _section_data(kept, section)
    link = sections[section[3]] if section[3] < len(sections) else None
    if link is None:
        msg = ".gnu.version_r links to a missing string table"
        raise ElfError(msg)
    strings = _section_data(kept, link)
    entries = section[4]  # sh_info: the number of entries
    # Every entry (16 bytes) and version (16 bytes) occupies its own bytes of the
    # section, so a chain longer than the section can hold loops: corrupt.
    if entries > len(data) // 16:
        msg = f".gnu.version_r claims {entries} entries in {len(data)} bytes"
        raise ElfError(msg)
    try:
        return _walk_version_needs(layout.endian, data, strings, entries)
    except struct.error as error:
        msg = f".gnu.version_r is truncated: {error}"
        raise ElfError(msg) from None


def _walk_version_needs(
    endian: str, data: bytes, strings: bytes, entries: int
) -> tuple[list[tuple[str, str]], dict[int, str]]:
    """Follow the verneed chain of ``entries`` entries, each bounded by the section's size."""
    pairs: list[tuple[str, str]] = []
    index_names: dict[int, str] = {}
    offset = 0
    capacity = len(data) // 16
    for entry in range(entries):
        _ver, count, file_name, aux, next_entry = struct.unpack_from(endian + "HHIII", data, offset)
        if count == 0:
            msg = ".gnu.version_r entry without versions"
            raise ElfError(msg)
        if len(pairs) + count > capacity:
            msg = f".gnu.version_r: more versions than its {len(data)} bytes hold (a looping chain)"
            raise ElfError(msg)
        library = _string(strings, file_name)
        aux_offset = offset + aux
        for version_number in range(count):
            _hash, _flags, other, name, next_aux = struct.unpack_from(endian + "IHHII", data, aux_offset)
            version = _string(strings, name)
            pairs.append((library, version))
            index_names[other & 0x7FFF] = version
            if next_aux == 0 and version_number + 1 < count:
                msg = f".gnu.version_r: the versions of {library!r} end before their count"
                raise ElfError(msg)
            aux_offset += next_aux
        if next_entry == 0 and entry + 1 < entries:
            msg = ".gnu.version_r: the chain ends (or loops) before its entry count"
            raise ElfError(msg)
        offset += next_entry
    return pairs, index_names


@dataclass
class _Symbols:
    by_version: dict[str, tuple[str, ...]]
    undefined: set[str]
    init_functions: set[str]
    pyfpe: bool
    ucs2: bool


_INIT_PREFIXES = tuple(p.encode() for p in MODULE_INIT_PREFIXES)


def _symbol_format(layout: _Layout, section: _Shdr) -> tuple[str, int, int, int]:
    """The struct format of one .dynsym entry and where st_name, st_info and st_shndx sit in it."""
    if layout.elf_class == 64:
        fmt, name_at, info_at, shndx_at = layout.endian + "IBBHQQ", 0, 1, 3
    else:
        fmt, name_at, info_at, shndx_at = layout.endian + "IIIBBH", 0, 3, 5
    step = struct.calcsize(fmt)
    entsize = section[5] or step
    if entsize != step:
        msg = f".dynsym entry size {entsize} is not {step}"
        raise ElfError(msg)
    return fmt, name_at, info_at, shndx_at


def _symbol_versions(layout: _Layout, by_type: dict[int, _Shdr], kept: _Kept) -> tuple[int, ...]:
    """The .gnu.version entries: one version index per dynamic symbol."""
    section = by_type.get(SHT_GNU_VERSYM)
    versym = b"" if section is None else _section_data(kept, section)
    if not versym:
        return ()
    return struct.unpack(layout.endian + f"{len(versym) // 2}H", versym[: len(versym) // 2 * 2])


def _symbols(
    layout: _Layout,
    sections: list[_Shdr],
    by_type: dict[int, _Shdr],
    kept: _Kept,
    version_index: dict[int, str],
) -> _Symbols:
    result = _Symbols({}, set(), set(), pyfpe=False, ucs2=False)
    section = by_type.get(SHT_DYNSYM)
    if section is None:
        return result
    data = _section_data(kept, section)
    if section[3] >= len(sections):
        msg = ".dynsym links to a missing string table"
        raise ElfError(msg)
    strings = _section_data(kept, sections[section[3]])
    versions = _symbol_versions(layout, by_type, kept)
    fmt, name_at, info_at, shndx_at = _symbol_format(layout, section)
    step = struct.calcsize(fmt)
    # The walk stays in one loop: libtorch-sized tables hold ~100k symbols.
    by_version: dict[str, list[str]] = {}
    names: dict[int, str] = {}  # one string per name offset, however many symbols share it
    for index, symbol in enumerate(struct.iter_unpack(fmt, data[: len(data) // step * step])):
        st_info, st_shndx = symbol[info_at], symbol[shndx_at]
        kind = st_info & 0xF
        if st_shndx != 0:
            if kind == STT_FUNC and strings.startswith(_INIT_PREFIXES, symbol[name_at]):
                result.init_functions.add(_string(strings, symbol[name_at]))
            continue
        name = names.get(symbol[name_at])
        if name is None:
            name = names[symbol[name_at]] = _string(strings, symbol[name_at])
        if not name:
            continue
        if st_info >> 4 != STB_WEAK:
            result.undefined.add(name)
        if kind in (STT_FUNC, STT_NOTYPE) and name in PYFPE_SYMBOLS:
            result.pyfpe = True
        if kind == STT_FUNC and "PyUnicodeUCS2_" in name:
            result.ucs2 = True
        if index < len(versions):
            version = version_index.get(versions[index] & 0x7FFF)
            if version is not None:
                by_version.setdefault(version, []).append(name)
    result.by_version = {v: tuple(sorted(set(names))) for v, names in by_version.items()}
    return result


def _x86_isa_needed(layout: _Layout, sections: list[_Shdr], kept: _Kept) -> tuple[int, ...]:
    """GNU_PROPERTY_X86_ISA_1_NEEDED values: the first GNU property note of each note section."""
    found: list[int] = []
    align = 8 if layout.elf_class == 64 else 4
    scanned = notes = 0
    for section in sections:
        if section[0] != SHT_NOTE:
            continue
        scanned += section[2]
        if scanned > TABLE_BUDGET:  # overlapping note sections re-reading the same bytes
            msg = f"implausible note sections: {scanned} bytes in all"
            raise ElfError(msg)
        data = kept.view(section[1], section[2])
        if data is None:  # a note section that is not loaded and was not kept
            continue
        offset = 0
        while offset + 12 < len(data):
            notes += 1
            if notes > NOTE_CAP:
                msg = f"implausible note sections: more than {NOTE_CAP} notes"
                raise ElfError(msg)
            namesz, descsz, note_type = struct.unpack_from(layout.endian + "III", data, offset)
            offset += 12
            name = bytes(data[offset : offset + min(namesz, 16)]).split(b"\0", 1)[0]
            offset += (namesz + 3) & ~3
            desc = data[offset : offset + descsz]
            offset += (descsz + 3) & ~3
            if note_type != NT_GNU_PROPERTY_TYPE_0 or name != b"GNU":
                continue
            at = 0
            while at + 8 <= len(desc):
                pr_type, pr_datasz = struct.unpack_from(layout.endian + "II", desc, at)
                if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED and pr_datasz == 4:
                    found.append(struct.unpack_from(layout.endian + "I", desc, at + 8)[0])
                at += (pr_datasz + 8 + align - 1) & ~(align - 1)
            break
    return tuple(found)
