"""auditwheel's verdict on a wheel, computed from ELF facts instead of an unpacked tree.

This follows ``auditwheel.wheel_abi.analyze_wheel_abi`` (as ``auditwheel show``
runs it) step by step, with auditwheel's own policy data and policy objects
(``WheelPolicies``, ``Policy``), but resolves libraries only inside the wheel:
a needed library is found through the ELF's ``$ORIGIN`` run paths or not at
all, never on the host. That is what ``auditwheel show --ldpaths ""`` does,
so both agree, and the answer is the same on every machine.

Where auditwheel would still look at the host (the directories of an
executable's ``PT_INTERP``, the host's libc when no file names one) this
module assumes glibc and finds nothing, and says so in its docstrings.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from auditwheel.architecture import Architecture
from auditwheel.error import NonPlatformWheelError, WheelToolsError
from auditwheel.libc import Libc
from auditwheel.policy import WheelPolicies
from auditwheel.wheeltools import get_wheel_architecture, get_wheel_libc, get_wheel_platforms

from buildmatrix.audit.elf import ElfInfo

__all__ = ["ROOT", "AbiReport", "ElfTree", "Library", "analyze", "platform_arch"]

# The wheel's root in the virtual file system paths are resolved in. The NUL
# byte makes it impossible for a real (host) path to land inside it.
ROOT = "/\0wheel"
LIBPYTHON_RE = re.compile(r"^libpython\d+\.\d+m?.so(\.\d)*$")  # as auditwheel.lddtree
ORIGIN_RE = re.compile(r"\$(ORIGIN|\{ORIGIN\})")
LOADER_NAMES = ("ld64.so.2", "ld64.so.1")

# (e_machine, ELF class, little endian) -> auditwheel architecture
_MACHINES = {
    (3, 32, True): Architecture.i686,
    (62, 64, True): Architecture.x86_64,
    (21, 64, True): Architecture.ppc64le,
    (21, 64, False): Architecture.ppc64,
    (243, 64, True): Architecture.riscv64,
    (183, 64, True): Architecture.aarch64,
    (22, 64, False): Architecture.s390x,
    (40, 32, True): Architecture.armv7l,
    (258, 64, True): Architecture.loongarch64,
}
# ELF for no CPU: GPU code objects (EM_CUDA, EM_AMDGPU) and eBPF programs. Only
# these are skipped; ELF for any other machine auditwheel does not know is foreign.
NO_CPU_MACHINES = {190: "EM_CUDA", 224: "EM_AMDGPU", 247: "EM_BPF"}
EF_ARM_EABIMASK, EF_ARM_EABI_VER5, EF_ARM_ABI_FLOAT_HARD = 0xFF000000, 0x05000000, 0x400
_LINUX_OSABIS = frozenset({0, 3})  # ELFOSABI_NONE/SYSV and ELFOSABI_GNU/LINUX


def platform_arch(info: ElfInfo) -> tuple[Architecture | None, Architecture | None, str | None]:
    """(baseline arch, extended x86_64 level, error) as ``auditwheel.lddtree._get_platform``."""
    base = _MACHINES.get((info.machine, info.elf_class, info.little_endian))
    if base is None:
        return None, None, f"unknown architecture (e_machine {info.machine})"
    extended: Architecture | None = None
    error: str | None = None
    if base is Architecture.x86_64:
        for data in info.x86_isa_needed:
            bits = data - (data & 1)  # clear the baseline bit
            if bits & 8:
                extended = Architecture.x86_64_v4
            elif bits & 4:
                extended = Architecture.x86_64_v3
            elif bits & 2:
                extended = Architecture.x86_64_v2
            elif bits:
                error = f"unknown x86_64 ISA level bits {data:#x}"
    elif base is Architecture.armv7l:
        if info.flags & EF_ARM_EABIMASK != EF_ARM_EABI_VER5:
            return None, None, "Invalid ARM EABI version for armv7l"
        if info.flags & EF_ARM_ABI_FLOAT_HARD != EF_ARM_ABI_FLOAT_HARD:
            return None, None, "armv7l shall use hard-float"
    return base, extended, error


def _compatible(a: ElfInfo, b: ElfInfo) -> bool:
    osabis = {a.osabi, b.osabi}
    return (
        (len(osabis) == 1 or osabis <= _LINUX_OSABIS)
        and a.elf_class == b.elf_class
        and a.little_endian == b.little_endian
        and a.machine == b.machine
    )


@dataclass(frozen=True, slots=True)
class Library:
    soname: str
    member: str | None  # the wheel member it resolved to
    on_host: bool = False  # resolved outside the wheel (only the PT_INTERP loader)
    needed: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        return self.member is not None or self.on_host


@dataclass(frozen=True, slots=True)
class ElfTree:
    """One ELF file and every library it loads, as ``auditwheel.lddtree.ldd`` sees it."""

    member: str
    libc: Libc | None
    needed: tuple[str, ...]
    libraries: dict[str, Library]


@dataclass
class _Wheel:
    elfs: Mapping[str, ElfInfo]  # member path -> facts
    directories: frozenset[str]  # virtual absolute paths


def _virtual(member: str) -> str:
    return posixpath.normpath(f"{ROOT}/{member}")


def _parse_ld_paths(value: str | None, member: str, wheel: _Wheel) -> list[str]:
    """``lddtree.parse_ld_paths`` restricted to directories inside the wheel."""
    if not value:
        return []
    result: list[str] = []
    for entry in value.split(":"):
        if entry == "":
            path = ROOT  # ld.so reads "" as the working directory: auditwheel's is the wheel root
        elif ORIGIN_RE.search(entry):
            path = ORIGIN_RE.sub(posixpath.dirname(_virtual(member)), entry)
        else:
            path = "/" + entry  # a host directory: never inside the wheel
        path = posixpath.normpath(path).replace("//", "/")
        if path not in result:
            result.append(path)
    return [p for p in result if p in wheel.directories]


def _ldd(
    member: str,
    wheel: _Wheel,
    ldpaths: dict[str, list[str]] | None = None,
    all_libs: dict[str, Library] | None = None,
) -> ElfTree:
    first = all_libs is None
    libraries: dict[str, Library] = {} if all_libs is None else all_libs
    info = wheel.elfs[member]
    libc: Libc | None = None
    if first and info.interpreter is not None:
        loader = posixpath.basename(posixpath.normpath(info.interpreter))
        libraries[loader] = Library(loader, None, on_host=True)
        libc = Libc.MUSL if loader.startswith("ld-musl-") else Libc.GLIBC
        # auditwheel adds the loader's host directories here; hermetic: none.
    rpaths = _parse_ld_paths(info.rpath, member, wheel)
    runpaths = _parse_ld_paths(info.runpath, member, wheel)
    if runpaths:
        rpaths = []  # with both set, only RUNPATH counts
    if first:
        for soname in info.needed:
            if soname.startswith(("libc.musl-", "ld-musl-")):
                libc = libc or Libc.MUSL
            elif soname == "libc.so.6" or soname.startswith(("ld-linux-", "ld64.so.")):
                libc = libc or Libc.GLIBC
        if libc is None:
            name = posixpath.basename(member)
            if name.endswith(("-arm-linux-musleabihf.so", "-linux-musl.so")):
                libc = Libc.MUSL
            elif name.endswith(("-arm-linux-gnueabihf.so", "-linux-gnu.so")):
                soabi = name.rsplit(".", 1)[0].split(".")[-1].split("-")
                valid = tuple(f"3{minor}" for minor in range(11, 100))
                if soabi[0] == "cpython" and len(soabi) > 1 and soabi[1].startswith(valid):
                    libc = Libc.GLIBC
        ldpaths = {"rpath": rpaths, "runpath": runpaths}
    assert ldpaths is not None
    search = ldpaths["rpath"] + rpaths + runpaths + ldpaths["runpath"]
    for soname in info.needed:
        if soname in libraries:
            continue
        if LIBPYTHON_RE.match(soname):
            libraries[soname] = Library(soname, None, on_host=False)
            continue
        found = _find_lib(info, soname, search, wheel)
        libraries[soname] = Library(soname, found)
        if found is None:
            continue
        dependency = _ldd(found, wheel, ldpaths, libraries)
        libraries[soname] = Library(soname, found, needed=dependency.needed)
    return ElfTree(member, libc, info.needed, libraries)


def _find_lib(info: ElfInfo, soname: str, search: list[str], wheel: _Wheel) -> str | None:
    for directory in search:
        candidate = posixpath.join(directory, soname)
        member = candidate[len(ROOT) + 1 :] if candidate.startswith(ROOT + "/") else None
        if member is None:
            continue
        other = wheel.elfs.get(member)
        if other is not None and _compatible(info, other):
            return member
    return None


@dataclass
class _ExternalRef:
    libs: dict[str, None] = field(default_factory=dict)
    blacklist: dict[str, set[str]] = field(default_factory=dict)


def _external_references(tree: ElfTree, info: ElfInfo, policies: Any, libc: Libc) -> dict[str, _ExternalRef]:
    """``WheelPolicies.lddtree_external_references`` over an in-wheel tree."""

    def filter_libs(libs: Iterable[str], whitelist: frozenset[str]) -> Iterable[str]:
        for lib in libs:
            if "ld-linux" in lib or lib in LOADER_NAMES:
                continue
            if libc == Libc.ANDROID and LIBPYTHON_RE.match(lib):
                continue
            if lib in whitelist:
                continue
            yield lib

    result: dict[str, _ExternalRef] = {}
    # Many policies share a whitelist: walk the tree once per distinct one.
    missing_by_whitelist: dict[frozenset[str], list[str]] = {}
    for policy in policies:
        reference = _ExternalRef()
        if policy != policies.linux:
            whitelist: frozenset[str] = policy.whitelist
            for lib in set(policy.blacklist) & set(tree.needed):
                hits = policy.blacklist[lib] & (info.undefined | {"*"})
                if hits:
                    reference.blacklist[lib] = set(hits)
            missing = missing_by_whitelist.get(whitelist)
            if missing is None:
                pending = set(filter_libs(tree.needed, whitelist))
                required: set[str] = set()
                while pending:
                    lib = pending.pop()
                    required.add(lib)
                    for dep in filter_libs(tree.libraries[lib].needed, whitelist):
                        if dep not in required:
                            pending.add(dep)
                missing = [lib for lib in sorted(required) if tree.libraries[lib].member is None]
                missing_by_whitelist[whitelist] = missing
            for lib in missing:
                reference.libs[lib] = None
        result[policy.name] = reference
    return result


def _fixup(py_trees: dict[str, ElfTree], other_trees: dict[str, ElfTree]) -> None:
    """``wheel_abi._fixup_elf_trees``: borrow resolutions from a fully resolved tree."""
    resolved = [
        tree
        for tree in [*py_trees.values(), *other_trees.values()]
        if all(lib.resolved for lib in tree.libraries.values())
    ]
    for member, tree in list(other_trees.items()):
        if all(lib.resolved for lib in tree.libraries.values()):
            continue
        reference = next(
            (
                candidate
                for candidate in resolved
                if any(lib.member == member for lib in candidate.libraries.values())
            ),
            None,
        )
        if reference is None:
            continue
        new: dict[str, Library] = {}
        seen = set(tree.libraries)
        for soname, lib in tree.libraries.items():
            if not lib.resolved and soname in reference.libraries:
                new[soname] = reference.libraries[soname]
                pending = set(new[soname].needed) - seen
                while pending:
                    batch = set(pending)
                    seen |= batch
                    for name in batch:
                        if name in reference.libraries:
                            new[name] = reference.libraries[name]
                            pending.update(new[name].needed)
                    pending -= seen
            else:
                new[soname] = lib
        other_trees[member] = ElfTree(tree.member, tree.libc, tree.needed, new)


@dataclass(frozen=True)
class AbiReport:
    """The verdict ``auditwheel show --ldpaths "" --json`` gives, plus what it rests on."""

    policies: Any  # auditwheel.policy.WheelPolicies
    sym_policy: Any  # auditwheel.policy.Policy
    overall_policy: Any
    versioned_symbols: dict[str, set[str]]  # library -> versions (loader excluded)
    trees: dict[str, ElfTree]  # every analysed ELF member
    roots: tuple[str, ...]  # the members auditwheel gathers external references from
    external_refs: dict[str, dict[str, _ExternalRef]]  # member -> policy name -> refs
    ucs2: bool
    pyfpe: bool
    unsupported_isa: dict[str, str]  # member -> why (an ISA extension, unknown bits)
    ignored: dict[str, str]  # member -> why auditwheel skips it (another CPU, another libc)
    skipped: dict[str, str]  # member -> ELF for no CPU (cubins, eBPF)
    # Where the libc came from: "tag" (the file name), "elf" (a member's loader or
    # libc), or "unknown" (nothing says; glibc assumed, as auditwheel on a glibc host).
    libc_source: str = "tag"
    # Python extensions whose libc nothing tells: auditwheel refuses these wheels.
    libc_unknown: tuple[str, ...] = ()

    def external_libs(self, policy_name: str) -> dict[str, list[str]]:
        """Library -> the root members needing it, for one policy."""
        result: dict[str, list[str]] = {}
        for member in self.roots:
            for lib in self.external_refs[member][policy_name].libs:
                result.setdefault(lib, []).append(member)
        return result

    def blacklisted(self, policy_name: str) -> dict[str, dict[str, set[str]]]:
        """Member -> library -> blacklisted symbols it uses, for one policy."""
        result: dict[str, dict[str, set[str]]] = {}
        for member in self.roots:
            blacklist = self.external_refs[member][policy_name].blacklist
            if blacklist:
                result[member] = blacklist
        return result


class NotPlatformWheel(Exception):
    """No ELF file in the wheel matches its architecture: auditwheel calls it pure."""

    def __init__(self, ignored: dict[str, str], skipped: dict[str, str]) -> None:
        super().__init__("no ELF file for the wheel's architecture")
        self.ignored = ignored
        self.skipped = skipped


def _policies(libc: Libc, architecture: Architecture, filename: str) -> Any:
    """auditwheel's policies for the wheel, never from the host.

    For musl, auditwheel picks the policy of the host's musl (or its newest
    when the host has none); here the wheel's own musllinux tag decides, else
    the newest musllinux policy in auditwheel's data.
    """
    musl_policy = None
    if libc == Libc.MUSL:
        known = {entry["name"] for entry in _musl_policies()}
        tagged = {
            "_".join(tag.split("_")[:3])  # musllinux_1_2_x86_64 -> musllinux_1_2
            for tag in get_wheel_platforms(filename)
            if tag.startswith("musllinux_")
        }
        musl_policy = min(tagged & known, key=_musl_priority, default=None)
        musl_policy = musl_policy or _newest_musl_policy()
    return WheelPolicies(libc=libc, arch=architecture, wheel_fn=Path(filename), musl_policy=musl_policy)


def _musl_policies() -> list[dict[str, Any]]:
    text = resources.files("auditwheel.policy").joinpath("musllinux-policy.json").read_text()
    entries: list[dict[str, Any]] = json.loads(text)
    return [entry for entry in entries if entry["name"] != "linux"]


def _musl_priority(name: str) -> int:
    return next((int(e["priority"]) for e in _musl_policies() if e["name"] == name), 1000)


def _newest_musl_policy() -> str:
    return str(min(_musl_policies(), key=lambda e: int(e["priority"]))["name"])


def wheel_architecture(filename: str) -> Architecture | None:
    try:
        arch: Architecture = get_wheel_architecture(filename)
        return arch
    except (WheelToolsError, NonPlatformWheelError):
        return None


def analyze(filename: str, elfs: Mapping[str, ElfInfo], members: Sequence[str]) -> AbiReport:
    """Analyse a wheel from the facts of its ELF members (``elfs``, in ``members`` order).

    ``members`` lists every member path (for the directories run paths may
    name). Raises ``NotPlatformWheel`` when no ELF file counts.
    """
    walk = _MemberWalk.start(filename, _Wheel(elfs, _directories(members)))
    for member, info in elfs.items():
        walk.add(member, info)
    return walk.report()


def _directories(members: Sequence[str]) -> frozenset[str]:
    """Every directory of the wheel, as virtual absolute paths (run paths may name them)."""
    directories = {ROOT}
    for member in members:
        parent = posixpath.dirname(_virtual(member))
        while parent.startswith(ROOT) and parent not in directories:
            directories.add(parent)
            parent = posixpath.dirname(parent)
    return frozenset(directories)


@dataclass
class _MemberWalk:
    """What ``analyze`` gathers member by member, in auditwheel's order."""

    filename: str
    wheel: _Wheel
    architecture: Architecture | None
    libc: Libc | None
    libc_source: str  # "tag" | "elf" | "unknown"
    libc_unknown: list[str] = field(default_factory=list)
    policies: Any = None
    py_trees: dict[str, ElfTree] = field(default_factory=dict)
    other_trees: dict[str, ElfTree] = field(default_factory=dict)
    refs: dict[str, dict[str, _ExternalRef]] = field(default_factory=dict)
    versioned: dict[str, set[str]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    pyfpe: bool = False
    ucs2: bool = False

    @classmethod
    def start(cls, filename: str, wheel: _Wheel) -> _MemberWalk:
        try:
            libc: Libc | None = get_wheel_libc(filename)
            libc_source = "tag"
        except WheelToolsError:
            libc = None
            libc_source = "elf"
        return cls(filename, wheel, wheel_architecture(filename), libc, libc_source)

    def add(self, member: str, info: ElfInfo) -> None:
        tree = _ldd(member, self.wheel)
        if not self._counts(member, info, tree):
            return
        if self.policies is None and self.libc is not None:
            self.policies = _policies(self.libc, self._architecture, self.filename)
        for library, version in info.version_needs:
            if library.startswith("ld-linux") or library in LOADER_NAMES:
                continue
            self.versioned.setdefault(library, set()).add(version)
        module = posixpath.basename(member).split(".", 1)[0]
        python = info.python_module_version(module)
        if python is None:
            self.other_trees[member] = tree
            return
        if self.policies is None:  # auditwheel raises InvalidLibcError; assume glibc
            self.libc = Libc.GLIBC
            self.libc_source = "unknown"
            self.libc_unknown.append(member)
            self.policies = _policies(self.libc, self._architecture, self.filename)
        self.py_trees[member] = tree
        self.pyfpe |= info.pyfpe
        self.ucs2 |= python == 2 and info.ucs2
        self.refs[member] = _external_references(tree, info, self.policies, self._libc)

    def _counts(self, member: str, info: ElfInfo, tree: ElfTree) -> bool:
        """Whether the member is code for this wheel's architecture and libc; else file it."""
        base, _extended, error = platform_arch(info)
        if base is None:
            _no_policy_machine(
                member,
                info=info,
                error=error,
                architecture=self.architecture,
                skipped=self.skipped,
                ignored=self.ignored,
            )
            return False
        if self.architecture is None:
            self.architecture = base
        elif base != self.architecture.baseline:
            self.ignored[member] = f"{base.value} code in a {self.architecture.value} wheel"
            return False
        if tree.libc is not None:
            if self.libc is None:
                self.libc = tree.libc
            elif self.libc != tree.libc:
                self.ignored[member] = f"links {tree.libc} in a {self.libc} wheel"
                return False
        return True

    @property
    def _architecture(self) -> Architecture:
        assert self.architecture is not None  # set by _counts before any policy is needed
        return self.architecture

    @property
    def _libc(self) -> Libc:
        assert self.libc is not None  # set before any policy is made
        return self.libc

    def report(self) -> AbiReport:
        if not self.py_trees and not self.other_trees:
            raise NotPlatformWheel(self.ignored, self.skipped)
        _fixup(self.py_trees, self.other_trees)
        trees = {**self.py_trees, **self.other_trees}
        needed_anywhere = {lib for tree in trees.values() for lib in tree.needed}
        if self.policies is None:
            # auditwheel falls back to the host's libc here; hermetic: glibc.
            self.libc = Libc.GLIBC
            self.libc_source = "unknown"
            self.policies = _policies(self.libc, self._architecture, self.filename)
        roots = list(self.py_trees)
        for member, tree in self.other_trees.items():
            if posixpath.basename(member) not in needed_anywhere:
                roots.append(member)
            self.refs[member] = _external_references(tree, self.wheel.elfs[member], self.policies, self._libc)
        return _verdict(
            policies=self.policies,
            versioned=self.versioned,
            trees=trees,
            roots=tuple(roots),
            refs=self.refs,
            elfs=self.wheel.elfs,
            ucs2=self.ucs2,
            pyfpe=self.pyfpe,
            ignored=self.ignored,
            skipped=self.skipped,
            libc_source=self.libc_source,
            libc_unknown=tuple(self.libc_unknown),
        )


def _no_policy_machine(
    member: str,
    *,
    info: ElfInfo,
    error: str | None,
    architecture: Architecture | None,
    skipped: dict[str, str],
    ignored: dict[str, str],
) -> None:
    """File an ELF member whose machine auditwheel has no policy for."""
    if info.machine in NO_CPU_MACHINES:
        # GPU code objects (cubins), eBPF objects: no CPU loads them.
        skipped[member] = f"{NO_CPU_MACHINES[info.machine]} (e_machine {info.machine}): code for no CPU"
    else:
        # Code for a CPU auditwheel knows no policy for (mips64, soft-float ARM...):
        # auditwheel skips it too, but it is foreign to the wheel's tag.
        wheel_arch = "architecture" if architecture is None else f"{architecture.value} tag"
        ignored[member] = f"{error}: not code for this wheel's {wheel_arch}"


def _merged_refs(
    policies: Any, roots: tuple[str, ...], refs: dict[str, dict[str, _ExternalRef]]
) -> dict[str, _ExternalRef]:
    """Per policy, the external libraries and blacklisted symbols of every root member."""
    merged: dict[str, _ExternalRef] = {p.name: _ExternalRef() for p in policies}
    for member in roots:
        for name, reference in refs[member].items():
            merged[name].libs.update(reference.libs)
            for lib, symbols in reference.blacklist.items():
                merged[name].blacklist.setdefault(lib, set()).update(symbols)
    return merged


def _unsupported_isa(policies: Any, roots: tuple[str, ...], elfs: Mapping[str, ElfInfo]) -> dict[str, str]:
    """Root members whose code needs more than the wheel's architecture: member -> why."""
    unsupported: dict[str, str] = {}
    for member in roots:
        _base, extended, error = platform_arch(elfs[member])
        if error is not None:
            unsupported[member] = error
        elif extended is not None and not policies.architecture.is_superset(extended):
            unsupported[member] = (
                f"needs the {extended.value} instruction set, beyond {policies.architecture.value}"
            )
    return unsupported


def _verdict(
    *,
    policies: Any,
    versioned: dict[str, set[str]],
    trees: dict[str, ElfTree],
    roots: tuple[str, ...],
    refs: dict[str, dict[str, _ExternalRef]],
    elfs: Mapping[str, ElfInfo],
    ucs2: bool,
    pyfpe: bool,
    ignored: dict[str, str],
    skipped: dict[str, str],
    libc_source: str,
    libc_unknown: tuple[str, ...],
) -> AbiReport:
    merged = _merged_refs(policies, roots, refs)
    # With no library resolved outside the wheel there are no external symbol
    # versions to merge, so the symbol policy is the symbols' own policy.
    sym_policy = policies.versioned_symbols_policy(versioned)
    ref_policy = max((p for p in policies if not merged[p.name].libs), default=policies.linux)
    blacklist_policy = max((p for p in policies if not merged[p.name].blacklist), default=policies.linux)
    unsupported = _unsupported_isa(policies, roots, elfs)
    machine_policy = policies.linux if unsupported else policies.highest
    ucs_policy = policies.linux if ucs2 else policies.highest
    pyfpe_policy = policies.linux if pyfpe else policies.highest
    overall = min(sym_policy, ucs_policy, pyfpe_policy, blacklist_policy, machine_policy, ref_policy)
    return AbiReport(
        policies=policies,
        sym_policy=sym_policy,
        overall_policy=overall,
        versioned_symbols=versioned,
        trees=trees,
        roots=roots,
        external_refs=refs,
        ucs2=ucs2,
        pyfpe=pyfpe,
        unsupported_isa=unsupported,
        ignored=ignored,
        skipped=skipped,
        libc_source=libc_source,
        libc_unknown=libc_unknown,
    )
