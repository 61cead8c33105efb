"""Audit wheels' glibc tags: auditwheel's verdict, hermetic, at the speed of reading the zip.

For every wheel: its filename tags, whether it is pure, and for platform
wheels the symbol versions and libraries each ELF member needs, with
``sym_tag`` / ``overall_tag`` exactly as ``auditwheel show --ldpaths ""
--json`` reports them (see ``buildmatrix.audit.abi``) and the exact highest glibc
version needed. Then the gate: violations of the wheel's own tag
(``glibc-underclaim``), of the policy's library allow list (``external-lib``),
of the matrix's floor for the package (``policy``), of its architecture
(``isa``), run paths into the build machine (``rpath``), a wheel auditwheel
refuses for its layout or an extension whose libc nothing names
(``layout``, ``libc``), and unreadable input (``corrupt``). A plain
``linux_*`` tag promises nothing: it is reported, never held to a policy.

ELF members are streamed out of the zip (``buildmatrix.audit.wheelscan`` and
``buildmatrix.audit.elf``); nothing is extracted or copied, so a member named ``../x`` or ``/etc/x`` is only
reported. Members of all wheels are read in parallel threads, biggest first
(inflating and hashing release the GIL).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from buildmatrix.audit.elf import ElfInfo
from buildmatrix.audit.wheelscan import OpenWheel, scan_wheels
from buildmatrix.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from buildmatrix.audit.abi import AbiReport
    from buildmatrix.model import Matrix

__all__ = [
    "VIOLATION_KINDS",
    "ElfFile",
    "Violation",
    "WheelAudit",
    "audit_wheel",
    "audit_wheels",
    "check_policy_name",
    "find_wheels",
    "known_policies",
    "printable",
]

WHEELS_PER_BATCH = 32  # wheels open (and scanned in parallel) at once
VIOLATION_KINDS = (
    "glibc-underclaim",
    "external-lib",
    "policy",
    "isa",
    "rpath",
    "libc",
    "layout",
    "corrupt",
)
# Control characters (terminal escapes, carriage returns) and the bidirectional
# overrides that can make a line read differently from its bytes.
_CONTROL_CODES = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F)]
_CONTROL = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [*_CONTROL_CODES, 0x2066, 0x2067, 0x2068, 0x2069]
}
_CONTROL[ord("\\")] = "\\\\"


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``), safe to print to a terminal or log."""
    return text.translate(_CONTROL)


@dataclass(frozen=True)
class Violation:
    kind: str  # one of VIOLATION_KINDS
    file: str  # the ELF member (or the wheel itself for wheel-wide problems)
    detail: str  # names the symbol version or library

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "file": self.file, "detail": self.detail}


@dataclass(frozen=True)
class ElfFile:
    """What one ELF member of a wheel needs."""

    file: str
    needed: tuple[str, ...]  # DT_NEEDED, in order
    bundled: tuple[str, ...]  # the needed libraries found inside the wheel
    versions: tuple[str, ...]  # symbol versions it requires ("GLIBC_2.29"), sorted

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "needed": list(self.needed),
            "bundled": list(self.bundled),
            "versions": list(self.versions),
        }


@dataclass(frozen=True)
class WheelAudit:
    wheel: str  # file name
    pure: bool
    sym_tag: str | None  # best tag the symbol versions allow (auditwheel's sym_tag)
    overall_tag: str | None  # also counting external libraries (auditwheel's overall_tag)
    glibc: str | None  # exact highest GLIBC_ version needed, e.g. "2.29"
    violations: tuple[Violation, ...]
    platform_tags: tuple[str, ...] = ()  # from the file name
    floor: str | None = None  # the policy the wheel was held to, if any
    files: tuple[ElfFile, ...] = ()
    external_libs: tuple[str, ...] = ()  # needed, not bundled, not allowed by the best policy
    versioned_symbols: tuple[tuple[str, tuple[str, ...]], ...] = ()  # library -> versions
    unreadable: bool = False  # the file itself could not be read as a zip (also `corrupt`)
    # ELF members for no CPU (GPU cubins, eBPF objects): skipped, as auditwheel does.
    skipped_elf: tuple[tuple[str, str], ...] = ()
    libc: str | None = None  # "glibc" | "musl" | ... ; "unknown" when nothing names it
    notes: tuple[str, ...] = ()  # facts worth a line that are not violations

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel,
            "pure": self.pure,
            "sym_tag": self.sym_tag,
            "overall_tag": self.overall_tag,
            "glibc": self.glibc,
            "ok": self.ok,
            "violations": [v.to_json() for v in self.violations],
            "platform_tags": list(self.platform_tags),
            "floor": self.floor,
            "external_libs": list(self.external_libs),
            "versioned_symbols": {lib: list(v) for lib, v in self.versioned_symbols},
            "files": [f.to_json() for f in self.files],
            "unreadable": self.unreadable,
            "skipped_elf": dict(self.skipped_elf),
            "libc": self.libc,
            "notes": list(self.notes),
        }


def known_policies() -> tuple[str, ...]:
    """Policy names (and aliases) from auditwheel's own policy files, without the arch."""
    names: list[str] = []
    for data_file in ("manylinux-policy.json", "musllinux-policy.json"):
        text = resources.files("auditwheel.policy").joinpath(data_file).read_text()
        for entry in json.loads(text):
            if entry["name"] != "linux":
                names.extend([entry["name"], *entry["aliases"]])
    return tuple(names)


def check_policy_name(policy: str) -> None:
    """Raise ``UsageError`` unless ``policy`` is a name auditwheel knows."""
    names = known_policies()
    if policy not in names:
        msg = f"unknown policy {policy!r}{did_you_mean(policy, names)}; auditwheel knows: " + (
            ", ".join(names)
        )
        raise UsageError(msg)


def find_wheels(paths: Sequence[Path]) -> list[Path]:
    """Expand folders to the ``*.whl`` files inside; a missing path is a usage error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.whl") if p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            msg = f"no such wheel or folder: {path}"
            raise UsageError(msg)
    return found


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class _Rules:
    floor: str | None  # "manylinux_2_28"
    allowed_external: tuple[str, ...]


def _glibc(report: AbiReport, elfs: Mapping[str, ElfInfo]) -> str | None:
    best: Version | None = None
    for member in report.trees:
        for _library, version in elfs[member].version_needs:
            prefix, _, number = version.partition("_")
            if prefix != "GLIBC":
                continue
            try:
                parsed = Version(number)
            except InvalidVersion:
                continue  # GLIBC_PRIVATE
            if best is None or parsed > best:
                best = parsed
    return None if best is None else str(best)


def _excess(info: ElfInfo, policy: Any) -> list[str]:
    """The symbol versions ``info`` needs that ``policy`` does not offer, with their symbols."""
    found: list[str] = []
    for library, version in info.version_needs:
        if library.startswith("ld-linux") or library in ("ld64.so.1", "ld64.so.2"):
            continue
        prefix, _, number = version.partition("_")
        allowed = policy.symbol_versions.get(prefix)
        if allowed is None or number in allowed:
            continue
        symbols = info.symbols_by_version.get(version, ())
        shown = ", ".join(f"{s}@{version}" for s in symbols[:5]) or version
        if len(symbols) > 5:
            shown += f" and {len(symbols) - 5} more"
        found.append(f"{shown} (from {library}; {_ceiling(policy, prefix)})")
    return found


def _ceiling(policy: Any, prefix: str) -> str:
    versions = []
    for number in policy.symbol_versions.get(prefix, ()):
        try:
            versions.append(Version(number))
        except InvalidVersion:
            continue
    top = max(versions, default=None)
    return f"{policy.name} allows {prefix} up to {top}" if top else f"{policy.name} allows no {prefix}"


def _claimed(report: AbiReport, platform_tags: Sequence[str]) -> Any:
    """The most compatible policy the file name claims (the strictest promise), or None."""
    claims = []
    for tag in platform_tags:
        try:
            claims.append(report.policies.get_policy_by_name(tag))
        except LookupError:
            continue
    return max(claims, default=None)


def _floor_policy(report: AbiReport, floor: str) -> Any:
    arch = report.policies.architecture.baseline.value
    try:
        return report.policies.get_policy_by_name(f"{floor}_{arch}")
    except LookupError:
        return None


def _violations(
    *,
    report: AbiReport,
    elfs: Mapping[str, ElfInfo],
    wheel: str,
    platform_tags: Sequence[str],
    rules: _Rules,
    all_members: Sequence[str],
) -> list[Violation]:
    found: list[Violation] = []
    claimed = _claimed(report, platform_tags)
    if claimed is not None and claimed == report.policies.linux:
        claimed = None  # a plain linux_* tag promises nothing: reported, never policed
    floor = None if rules.floor is None else _floor_policy(report, rules.floor)
    if rules.floor is not None and floor is None:
        arch = report.policies.architecture.value
        libc = report.policies.libc.value
        detail = f"the floor {rules.floor} is not a policy for this {libc} {arch} wheel"
        found.append(Violation("policy", wheel, detail))
    # The tag the wheel promises must hold for its symbols and blacklisted symbols.
    if claimed is not None and report.sym_policy < claimed:
        for member in report.trees:
            for excess in _excess(elfs[member], claimed):
                found.append(Violation("glibc-underclaim", member, f"needs {excess}"))
    # The floor the matrix sets: the tag must be no newer, nor the symbols.
    if floor is not None and (claimed is None or claimed < floor):
        shown = claimed.name if claimed is not None else ".".join(platform_tags)
        found.append(Violation("policy", wheel, f"tagged {shown}, newer than the floor {floor.name}"))
        for member in report.trees:
            for excess in _excess(elfs[member], floor):
                found.append(Violation("policy", member, f"needs {excess}"))
    held_to = floor if floor is not None else claimed
    if held_to is not None:
        kind = "policy" if floor is not None else "glibc-underclaim"
        found += _held_violations(
            report, held_to, kind=kind, wheel=wheel, rules=rules, all_members=all_members
        )
    for member, why in sorted(report.unsupported_isa.items()):
        found.append(Violation("isa", member, why))
    for member, why in sorted(report.ignored.items()):
        found.append(Violation("isa", member, why))
    if all(tag == "any" for tag in platform_tags):
        found.append(Violation("isa", wheel, "native code in a wheel tagged for any platform"))
    return found + _hygiene(report, elfs)


def _held_violations(
    report: AbiReport, held_to: Any, *, kind: str, wheel: str, rules: _Rules, all_members: Sequence[str]
) -> list[Violation]:
    """What the policy the wheel is held to (its floor, else its tag) forbids: blacklisted
    symbols, UCS2 or PyFPE, external libraries off its allow list."""
    found: list[Violation] = []
    for member, libs in report.blacklisted(held_to.name).items():
        for lib, symbols in sorted(libs.items()):
            names = ", ".join(sorted(symbols))
            found.append(Violation(kind, member, f"uses {names} from {lib}, blacklisted by {held_to.name}"))
    if report.ucs2 or report.pyfpe:
        what = "narrow-unicode (UCS2) symbols" if report.ucs2 else "PyFPE_jbuf"
        found.append(Violation(kind, wheel, f"uses {what}, not allowed by {held_to.name}"))
    basenames: dict[str, list[str]] = {}
    for member in all_members:
        basenames.setdefault(posixpath.basename(member), []).append(member)
    for lib, members in sorted(report.external_libs(held_to.name).items()):
        if any(fnmatch.fnmatchcase(lib, pattern) for pattern in rules.allowed_external):
            continue
        elsewhere = basenames.get(lib)
        why = f"bundled as {elsewhere[0]} but not on the run path" if elsewhere else "not bundled"
        for member in members:
            found.append(
                Violation(
                    "external-lib",
                    member,
                    f"needs {lib}: {why}, not on the {held_to.name} allow list"
                    + (", not allowed for this package" if rules.allowed_external else ""),
                )
            )
    return found


def _hygiene(report: AbiReport, elfs: Mapping[str, ElfInfo]) -> list[Violation]:
    """What no tag promises but every user needs: a known libc, run paths inside the wheel."""
    found = []
    for member in report.libc_unknown:
        found.append(
            Violation(
                "libc",
                member,
                "a Python extension that names no libc (no loader, no libc needed) in a wheel whose "
                "tag names none: auditwheel refuses it (couldn't detect libc)",
            )
        )
    for member in [*report.trees, *report.ignored]:
        found.extend(_rpath_violations(member, elfs[member]))
    return found


def _rpath_violations(member: str, info: ElfInfo) -> list[Violation]:
    """Run path entries that leave the wheel for a fixed place on the user's machine.

    An absolute entry names a folder of the machine the wheel was built on: it
    does not exist on users' machines, or worse, someone there can write to it,
    and the loader searches it before the system. A relative entry without
    ``$ORIGIN`` is resolved against the working directory: the same, wherever
    the user stands. ``$ORIGIN`` entries stay with the installed files.
    """
    found = []
    for tag, value in (("RPATH", info.rpath), ("RUNPATH", info.runpath)):
        for entry in (value or "").split(":") if value else ():
            if "$ORIGIN" in entry or "${ORIGIN}" in entry:
                continue
            where = (
                "an absolute path on the build machine"
                if entry.startswith("/")
                else "relative to the working directory"
            )
            shown = printable(entry) if entry else "(empty)"
            detail = f"{tag} entry {shown} is {where}, outside the wheel; use $ORIGIN-relative paths"
            found.append(Violation("rpath", member, detail))
    return found


def _files(report: AbiReport, elfs: Mapping[str, ElfInfo]) -> tuple[ElfFile, ...]:
    result = []
    for member, tree in report.trees.items():
        info = elfs[member]
        bundled = tuple(lib for lib in info.needed if lib in tree.libraries and tree.libraries[lib].member)
        versions = tuple(sorted({version for _lib, version in info.version_needs}))
        result.append(ElfFile(member, info.needed, bundled, versions))
    return tuple(result)


def _finish(opened: OpenWheel, rules: _Rules) -> WheelAudit:
    # Imported here, not at the top: auditwheel's policies and pyelftools take a
    # quarter second to import, which now overlaps the members' inflating.
    from buildmatrix.audit.abi import NotPlatformWheel, analyze

    name = opened.path.name
    violations: list[Violation] = []
    try:
        _dist, _version, _build, tags = parse_wheel_filename(name)
        platform_tags = tuple(sorted({tag.platform for tag in tags}))
    except InvalidWheelFilename as error:
        platform_tags = ()
        violations.append(Violation("corrupt", name, f"not a wheel file name: {error}"))
    empty = WheelAudit(name, False, None, None, None, (), platform_tags, rules.floor)
    if opened.error is not None:
        violations.append(Violation("corrupt", name, opened.error))
        return replace(_with(empty, violations), unreadable=True)
    for member in opened.unsafe:
        violations.append(Violation("corrupt", member, "member name points outside the wheel; not unpacked"))
    violations.extend(_duplicates(opened.members))
    violations.extend(_layout(name, opened.members))
    elfs = _read_elfs(opened, violations)
    if not platform_tags:
        return _with(empty, violations)
    try:
        report = analyze(name, elfs, opened.members)
    except NotPlatformWheel as pure:
        for member, why in sorted(pure.ignored.items()):
            violations.append(Violation("isa", member, why))
        for member in pure.ignored:
            violations.extend(_rpath_violations(member, elfs[member]))
        pure_audit = WheelAudit(name, True, None, None, None, (), platform_tags, rules.floor)
        return replace(_with(pure_audit, violations), skipped_elf=tuple(sorted(pure.skipped.items())))
    except (ValueError, LookupError) as error:  # auditwheel has no policy for this wheel
        violations.append(Violation("corrupt", name, f"cannot analyse: {error}"))
        return _with(empty, violations)
    except RecursionError:
        violations.append(Violation("corrupt", name, "a chain of bundled libraries too deep to follow"))
        return _with(empty, violations)
    return _audit(
        name,
        report,
        elfs=elfs,
        members=opened.members,
        platform_tags=platform_tags,
        rules=rules,
        violations=violations,
    )


def _read_elfs(opened: OpenWheel, violations: list[Violation]) -> dict[str, ElfInfo]:
    """The ELF facts of every member as its read finishes (copies of a name labelled apart);
    unreadable members and ELF files in purelib become violations."""
    elfs: dict[str, ElfInfo] = {}
    copies: dict[str, int] = {}
    names = set(opened.members)
    for member, future in opened.reads:
        copies[member] = copies.get(member, 0) + 1
        # A later copy of a name is analysed under its own label, like any other file.
        label = member if copies[member] == 1 else f"{member} [copy {copies[member]}]"
        while label != member and (label in names or label in elfs):
            label += " [again]"  # a member may itself be named like a copy's label
        result = future.result()
        if result.error is not None:
            violations.append(Violation("corrupt", label, result.error))
        elif result.info is not None:
            elfs[label] = result.info
    for member in elfs:
        if "purelib" in member.split("/")[:-1]:
            detail = "ELF file in a purelib folder: auditwheel refuses the wheel (it must be platlib)"
            violations.append(Violation("layout", member, detail))
    return elfs


def _audit(
    name: str,
    report: AbiReport,
    *,
    elfs: Mapping[str, ElfInfo],
    members: Sequence[str],
    platform_tags: tuple[str, ...],
    rules: _Rules,
    violations: list[Violation],
) -> WheelAudit:
    """A platform wheel's audit from auditwheel's analysis: the violations, tags and notes."""
    violations.extend(
        _violations(
            report=report,
            elfs=elfs,
            wheel=name,
            platform_tags=platform_tags,
            rules=rules,
            all_members=members,
        )
    )
    highest = report.policies.highest.name
    libc, notes = _libc_and_notes(report, platform_tags)
    return WheelAudit(
        wheel=name,
        pure=False,
        sym_tag=report.sym_policy.name,
        overall_tag=report.overall_policy.name,
        glibc=_glibc(report, elfs),
        violations=tuple(violations),
        platform_tags=platform_tags,
        floor=rules.floor,
        files=_files(report, elfs),
        external_libs=tuple(sorted(report.external_libs(highest))),
        versioned_symbols=tuple(
            (lib, tuple(sorted(v))) for lib, v in sorted(report.versioned_symbols.items())
        ),
        skipped_elf=tuple(sorted(report.skipped.items())),
        libc=libc,
        notes=tuple(notes),
    )


def _libc_and_notes(report: AbiReport, platform_tags: tuple[str, ...]) -> tuple[str, list[str]]:
    """The libc the wheel is judged for, and what the audit could not promise."""
    notes = []
    if any(tag.startswith("linux_") for tag in platform_tags) and _claimed(report, platform_tags) in (
        None,
        report.policies.linux,
    ):
        notes.append(
            f"tagged {'.'.join(platform_tags)}: a plain linux tag promises nothing, "
            "so no tag policy was checked"
        )
    libc = report.policies.libc.value
    if report.libc_source == "unknown":
        libc = "unknown"
        notes.append(
            "no member names its libc (no loader, no libc needed) and the tag names none: "
            "judged as glibc, as auditwheel does on a glibc host"
        )
    return libc, notes


def _duplicates(members: Sequence[str]) -> list[Violation]:
    counts: dict[str, int] = {}
    for member in members:
        counts[member] = counts.get(member, 0) + 1
    return [
        Violation(
            "corrupt",
            member,
            f"the zip holds {count} members with this name: installers keep only one, "
            "so the wheel is not what any single copy says (every copy was audited)",
        )
        for member, count in counts.items()
        if count > 1
    ]


def _layout(wheel: str, members: Sequence[str]) -> list[Violation]:
    """What ``auditwheel repair`` refuses in a wheel's layout: not exactly one ``.dist-info``."""
    dist_infos = sorted({m.split("/", 1)[0] for m in members if m.split("/", 1)[0].endswith(".dist-info")})
    if len(dist_infos) == 1:
        return []
    found = ", ".join(dist_infos) if dist_infos else "none"
    detail = f"not a wheel: needs exactly one top-level *.dist-info folder, found {found}"
    return [Violation("layout", wheel, detail)]


def _with(audit: WheelAudit, violations: list[Violation]) -> WheelAudit:
    return WheelAudit(
        audit.wheel,
        audit.pure,
        audit.sym_tag,
        audit.overall_tag,
        audit.glibc,
        tuple(violations),
        audit.platform_tags,
        audit.floor,
    )


# ---------------------------------------------------------------- public API


def _rules_for(path: Path, matrix: Matrix | None, policy: str | None) -> _Rules:
    allowed: tuple[str, ...] = ()
    floor = policy
    if matrix is not None:
        try:
            distribution: NormalizedName | None = parse_wheel_filename(path.name)[0]
        except InvalidWheelFilename:
            distribution = None
        for package in matrix.wheels:
            if distribution is not None and canonicalize_name(package.name) == distribution:
                allowed = tuple(package.external_libs)
                if policy is None and package.kind != "pure":
                    floor = package.policy
    return _Rules(floor, allowed)


def audit_wheel(
    path: Path,
    *,
    policy: str | None = None,
    allowed_external: Sequence[str] = (),
    jobs: int | None = None,
) -> WheelAudit:
    """Audit one wheel. ``policy`` (``"manylinux_2_28"``) is the floor it must fit;
    ``allowed_external`` are sonames (fnmatch patterns) it may need unbundled."""
    if policy is not None:
        check_policy_name(policy)
    rules = _Rules(policy, tuple(allowed_external))
    with ExitStack() as stack:
        (opened,) = list(scan_wheels([path], jobs, stack))
        return _finish(opened, rules)


def audit_wheels(
    paths: Sequence[Path],
    *,
    matrix: Matrix | None = None,
    policy: str | None = None,
    jobs: int | None = None,
    on_result: Callable[[WheelAudit], None] | None = None,
) -> list[WheelAudit]:
    """Audit many wheels in parallel, in the order given.

    With a ``matrix``, a wheel whose distribution is one of ``matrix.wheels``
    is held to that package's ``policy`` floor and may need its
    ``external_libs``; ``policy`` overrides every floor. A corrupt wheel is a
    verdict like any other, never an exception. ``on_result`` is called as
    each verdict is ready (for progress).
    """
    if policy is not None:
        check_policy_name(policy)
    results: list[WheelAudit] = []
    # Batches bound the open files and the facts held in memory at once.
    for first in range(0, len(paths), WHEELS_PER_BATCH):
        with ExitStack() as stack:
            for opened in scan_wheels(paths[first : first + WHEELS_PER_BATCH], jobs, stack):
                audit = _finish(opened, _rules_for(opened.path, matrix, policy))
                results.append(audit)
                if on_result is not None:
                    on_result(audit)
    return results
