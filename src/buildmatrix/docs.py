"""The support-matrix page (``docs/support-matrix.md``), generated from the matrix.

The reference page was maintained by hand and drifted from the build within
days of a bump; here every table, note and caution comes from matrix.toml.
``render`` is a pure function of the matrix (no clock, no environment, stable
ordering), so ``buildmatrix docs --check`` can compare the committed page with
a fresh render byte for byte. ``warnings`` points at data that renders fine but
is probably wrong.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.expand import TargetKind, WheelTarget, expand
from buildmatrix.model import (
    BuildSupport,
    Matrix,
    Note,
    Release,
    ReleaseStatus,
    Rule,
    WheelPackage,
)

__all__ = [
    "DEFAULT_OUT",
    "HEADER",
    "Section",
    "diff",
    "render",
    "warnings",
]

# Relative to the folder of matrix.toml.
DEFAULT_OUT = Path("docs") / "support-matrix.md"

HEADER = (
    "<!--\n"
    "  Generated from matrix.toml by `buildmatrix docs` - do not edit.\n"
    "  Change matrix.toml and run `nox -s docs` (CI runs `buildmatrix docs --check`).\n"
    "-->\n"
)

MISSING = "—"  # a cell the matrix has no value for (shown, never guessed)


class Section:
    """The ``section`` values rules and notes use to place themselves on the page."""

    HARDWARE = "hardware"
    GPU = "gpu"
    PLATFORM = "platform"
    RUNTIME = "runtime-dependencies"
    BUILD_DEPENDENCIES = "build-dependencies"
    CUDA = "cuda"
    CLOUD = "cloud"
    BUILD_SUPPORT = "build-support"

    ALL = (HARDWARE, GPU, PLATFORM, RUNTIME, BUILD_DEPENDENCIES, CUDA, CLOUD, BUILD_SUPPORT)


# --------------------------------------------------------------------------
# Markdown building blocks
# --------------------------------------------------------------------------


def _cell(text: str) -> str:
    # A pipe would end the cell; a newline would end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _bold(text: str) -> str:
    return f"**{text}**" if text else text


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A left-aligned table padded to column width, so the raw file reads well too."""
    head = [_bold(_cell(h)) for h in header]
    body = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in head]
    for row in body:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    # ":" plus at least three dashes, as the reference writes its separators.
    widths = [max(w, 4) for w in widths]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "| " + " | ".join(":" + "-" * (w - 1) for w in widths) + " |"
    return "\n".join([line(head), separator, *(line(row) for row in body)]) + "\n"


def _admonition(kind: str, paragraphs: Sequence[str]) -> str:
    """A GitHub alert block (``> [!Note]``); paragraphs are separated by ``>``."""
    lines = [f"> [!{kind}]"]
    for index, paragraph in enumerate(paragraphs):
        if index:
            lines.append(">")
        lines.extend(f"> {line}" if line else ">" for line in paragraph.splitlines())
    return "\n".join(lines) + "\n"


def _callouts(matrix: Matrix, section: str) -> list[str]:
    """The notes, then the rules' messages, placed in ``section``, in matrix order.

    Consecutive rules with the same admonition share one block, as in the
    reference ("KVBM only on 3.12. Python 3.12 only on Ubuntu 24.04.").
    """
    blocks = [_admonition(note.admonition, note.text.split("\n\n")) for note in _notes(matrix, section)]
    group: list[Rule] = []
    for rule in (r for r in matrix.rules if r.section == section):
        if group and group[-1].admonition != rule.admonition:
            blocks.append(_rule_block(group))
            group = []
        group.append(rule)
    if group:
        blocks.append(_rule_block(group))
    return blocks


def _notes(matrix: Matrix, section: str) -> list[Note]:
    return [note for note in matrix.notes if note.section == section]


def _rule_block(rules: Sequence[Rule]) -> str:
    return _admonition(rules[0].admonition, [" ".join(rule.message.strip() for rule in rules)])


# --------------------------------------------------------------------------
# The page, one function per section
# --------------------------------------------------------------------------


def render(matrix: Matrix) -> str:
    """The whole page as Markdown; deterministic for a given matrix."""
    parts: list[str] = [
        HEADER,
        f"# {matrix.project} Support Matrix\n",
        f"This document provides the support matrix for {matrix.project}, including hardware, "
        "software and build instructions.\n",
        *_hardware(matrix),
        *_platforms(matrix),
        "## Software Compatibility\n",
        *_runtime_dependencies(matrix),
        *_effective_floors(matrix),
        *_build_dependencies(matrix),
        *_cuda(matrix),
        *_cloud(matrix),
        *_build_support(matrix),
    ]
    return "\n".join(parts)


def _hardware(matrix: Matrix) -> list[str]:
    cpu = _table(
        ["CPU Architecture", "Wheel tag", "OCI platform", "Status"],
        [[_bold(a.display), a.name, a.platform, str(a.status)] for a in matrix.archs],
    )
    gpu = _table(
        ["GPU Architecture", "CUDA compute capability (SM)", "Status"],
        [[_bold(g.display), _sm_list(g.sm), str(g.status)] for g in matrix.gpus],
    )
    all_sm = sorted({sm for g in matrix.gpus for sm in g.sm}, key=Version)
    arch_list = ";".join(all_sm)
    return [
        "## Hardware Compatibility\n",
        cpu,
        *_callouts(matrix, Section.HARDWARE),
        "### GPU Compatibility\n",
        "If you are using a **GPU**, the following GPU models and architectures are supported:\n",
        gpu,
        f"Images and native wheels target these compute capabilities "
        f'(`TORCH_CUDA_ARCH_LIST="{arch_list}"`).\n',
        *_callouts(matrix, Section.GPU),
    ]


def _sm_list(sms: Sequence[str]) -> str:
    # "9.0" is compute capability 9.0, compiled for as sm_90.
    return ", ".join(f"{sm} (`sm_{sm.replace('.', '')}`)" for sm in sms)


def _platforms(matrix: Matrix) -> list[str]:
    rows = [
        [_bold(os_.name), os_.version, _arch_display(matrix, os_.arch), str(os_.status)]
        for os_ in matrix.operating_systems
    ]
    return [
        "## Platform Architecture Compatibility\n",
        f"**{matrix.project}** is compatible with the following platforms:\n",
        _table(["Operating System", "Version", "Architecture", "Status"], rows),
        *_callouts(matrix, Section.PLATFORM),
    ]


def _arch_display(matrix: Matrix, name: str) -> str:
    known = {a.name: a.display for a in matrix.archs}
    return known.get(name, name)


def _runtime_dependencies(matrix: Matrix) -> list[str]:
    rows = []
    for package in matrix.runtime_packages:
        glibc = f">={package.glibc}"
        if package.remark:
            glibc += f" ({package.remark})"
        cuda = "" if package.cuda is None else f">={package.cuda}"
        rows.append([package.display, str(package.version), glibc, cuda])
    return [
        "### Runtime Dependency\n",
        _table(["Python Package", "Version", "glibc version", "CUDA Version"], rows),
        *_callouts(matrix, Section.RUNTIME),
    ]


def _effective_floors(matrix: Matrix) -> list[str]:
    """The committed `buildmatrix installs` results beside the claimed floor (offline)."""
    from buildmatrix.installs.results import floor_table

    found = floor_table(matrix)
    if found is None:
        return []
    blocks = ["### Effective glibc floor\n", found.source + "\n", _table(found.header, found.rows)]
    if found.contradicted:
        blocks.append(
            _admonition("Warning", ["The measured results contradict the matrix:", *found.contradicted])
        )
    return blocks


def _build_dependencies(matrix: Matrix) -> list[str]:
    header = ["Dependency", *(release.display for release in matrix.releases)]
    rows = []
    for dependency in matrix.dependencies:
        row = [dependency.display]
        for release in matrix.releases:
            pin = release.pins.get(dependency.name)
            row.append(MISSING if pin is None else str(pin))
        rows.append(row)
    status_row = ["Release status", *(_release_status(release) for release in matrix.releases)]
    return [
        "### Build Dependency\n",
        f"The following table shows the dependency versions included with each {matrix.project} release:\n",
        _table(header, [*rows, status_row]),
        *_callouts(matrix, Section.BUILD_DEPENDENCIES),
    ]


def _release_status(release: Release) -> str:
    if release.status is ReleaseStatus.DEVELOPMENT:
        return "development"
    if release.status is ReleaseStatus.UNRELEASED:
        return "planned " + release.planned.isoformat() if release.planned else "unreleased"
    return "released"


def _cuda(matrix: Matrix) -> list[str]:
    header = [f"{matrix.project} Version", *(f.display for f in matrix.frameworks), "Source"]
    rows = []
    inherited: list[Release] = []
    for release in matrix.releases:
        row = [_bold(f"{matrix.project} {release.display}")]
        for framework in matrix.frameworks:
            cuda = release.cuda.get(framework.name)
            row.append(MISSING if cuda is None else f"CUDA {cuda}")
        if release.cuda_inherited_from is None:
            row.append("stated for this release")
        else:
            row.append(f"inherited from {release.cuda_inherited_from}")
            inherited.append(release)
        rows.append(row)
    parts = ["### CUDA Support by Framework\n", _table(header, rows)]
    if inherited:
        sources = sorted({r.cuda_inherited_from or "" for r in inherited})
        names = ", ".join(r.name for r in inherited)
        verb = "reuses" if len(inherited) == 1 else "reuse"
        parts.append(
            _admonition(
                "Note",
                [
                    f"CUDA versions are stated in {matrix.path.name} for {_join(sources)} only; "
                    f"{names} {verb} them (`cuda = {{ inherit = ... }}`) until their own are "
                    "recorded."
                ],
            )
        )
    parts.extend(_callouts(matrix, Section.CUDA))
    return parts


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _cloud(matrix: Matrix) -> list[str]:
    parts = ["## Cloud Service Provider Compatibility\n"]
    providers = list(dict.fromkeys(c.provider for c in matrix.clouds))
    for provider in providers:
        rows = [
            [_bold(c.os), c.version, _arch_display(matrix, c.arch), f"{c.status}{c.footnote}"]
            for c in matrix.clouds
            if c.provider == provider
        ]
        parts.append(f"### {provider}\n")
        parts.append(_table(["Host Operating System", "Version", "Architecture", "Status"], rows))
    parts.extend(_callouts(matrix, Section.CLOUD))
    return parts


def _build_support(matrix: Matrix) -> list[str]:
    lines = [f"**{matrix.project}** currently provides build support in the following ways:", ""]
    for entry in matrix.build_support:
        lines.extend(_build_support_entry(matrix, entry))
        lines.append("")
    parts = ["## Build Support\n", "\n".join(lines)]
    parts.extend(_artifacts(matrix))
    parts.extend(_callouts(matrix, Section.BUILD_SUPPORT))
    parts.append(
        f"Once you've confirmed that your platform and architecture are compatible, you can "
        f"install **{matrix.project}** by following the instructions in the "
        f"[Quick Start Guide]({matrix.source_url}/blob/main/README.md#installation).\n"
    )
    return parts


def _build_support_entry(matrix: Matrix, entry: BuildSupport) -> list[str]:
    head = f"- **{entry.title}**:"
    if entry.description:
        head += f" {entry.description}"
    lines = [head]
    wheels = {w.name for w in matrix.wheels}
    images = {f.display: f.name for f in matrix.frameworks}
    image_names = {i.framework: i.name for i in matrix.images}
    for item in entry.items:
        text = f"  - [{item.name}]({item.url})"
        if canonicalize_name(item.name) in wheels:
            text += f" (on the package index as `{canonicalize_name(item.name)}`)"
        elif item.name in images and images[item.name] in image_names:
            text += f" (image `{image_names[images[item.name]]}`)"
        if item.remark:
            text += f": {item.remark}"
        lines.append(text)
    return lines


def _artifacts(matrix: Matrix) -> list[str]:
    """What one release's build produces: wheel tags and image platforms, after the rules."""
    if not matrix.releases:
        return []
    # Wheels only: image targets need every pin, and the page must render even without one.
    plan = expand(matrix, releases=matrix.releases[:1], kind=TargetKind.WHEEL)
    wheel_rows = []
    for package in matrix.wheels:
        targets = [t for t in plan.wheels() if t.package == package]
        tags = list(dict.fromkeys(_wheel_tag(t) for t in targets))
        wheel_rows.append(
            [
                f"`{package.name}`",
                str(package.kind),
                ", ".join(_served_pythons(matrix, package)) or MISSING,
                ", ".join(_arch_display(matrix, a) for a in package.arch),
                "<br>".join(f"`{tag}`" for tag in tags) or MISSING,
            ]
        )
    image_rows = []
    for image in matrix.images:
        platforms = [
            matrix.arch(arch).platform
            for arch in image.arch
            if _permitted(
                matrix,
                kind=TargetKind.IMAGE,
                framework=image.framework,
                arch=arch,
                python=image.python,
                os=image.os,
            )
        ]
        image_rows.append(
            [
                f"`{image.name}`",
                matrix.framework(image.framework).display,
                image.python,
                image.os,
                ", ".join(platforms) or MISSING,
            ]
        )
    return [
        "### Artifacts per release\n",
        "Every release builds these wheels (rules applied; abi3 and pure wheels are built "
        "once for the lowest Python and serve the others):\n",
        _table(["Wheel", "Kind", "Python", "Architectures", "Tags"], wheel_rows),
        "and these runtime images, each one manifest list over its platforms:\n",
        _table(["Image", "Framework", "Python", "Base OS", "Platforms"], image_rows),
    ]


def _served_pythons(matrix: Matrix, package: WheelPackage) -> list[str]:
    """The package's Pythons that no rule forbids (kvbm: 3.12 only)."""
    return [
        python
        for python in package.python
        if _permitted(matrix, kind=TargetKind.WHEEL, package=str(package.name), python=python)
    ]


def _permitted(matrix: Matrix, *, kind: TargetKind, **attributes: str) -> bool:
    """No rule forbids targets with these attributes (the ones not given are not judged)."""
    given = {"kind": str(kind), **attributes}
    return all(rule.permits(given) for rule in matrix.rules)


def _wheel_tag(target: WheelTarget) -> str:
    """The full compatibility tag: ``py3-none-any``, ``cp310-abi3-...``, ``cp312-cp312-...``."""
    python_tag = target.python_tag
    if target.platform_tag == "any":
        return f"{python_tag}-none-any"
    if python_tag.endswith("-abi3"):
        return f"{python_tag}-{target.platform_tag}"
    return f"{python_tag}-{python_tag}-{target.platform_tag}"


# --------------------------------------------------------------------------
# Suspicious data
# --------------------------------------------------------------------------


def warnings(matrix: Matrix, *, today: datetime.date | None = None) -> list[str]:
    """Data that renders but is probably wrong, one sentence each, in a stable order.

    ``today`` (default: the real date) only decides whether an unreleased
    release's planned date has already passed; the page never depends on it.
    """
    today = datetime.date.today() if today is None else today
    found: list[str] = []
    found.extend(_planned_dates(matrix, today))
    found.extend(_pins_going_backwards(matrix))
    found.extend(_missing_pins(matrix))
    found.extend(_glibc_floors(matrix))
    found.extend(_runtime_versions(matrix))
    found.extend(_unplaced_callouts(matrix))
    return found


def _unplaced_callouts(matrix: Matrix) -> list[str]:
    """A note or rule whose ``section`` the page has no place for would silently vanish."""
    known = ", ".join(Section.ALL)
    found = [
        f"rule {rule.id} names section {rule.section!r}, which the page does not have "
        f"(known: {known}); its message is not shown"
        for rule in matrix.rules
        if rule.section not in Section.ALL
    ]
    found.extend(
        f"note {index + 1} ({note.admonition}) names section {note.section!r}, which the page "
        f"does not have (known: {known}); it is not shown"
        for index, note in enumerate(matrix.notes)
        if note.section not in Section.ALL
    )
    return found


def _planned_dates(matrix: Matrix, today: datetime.date) -> list[str]:
    """An unpublished release planned before a release it follows, or planned in the past."""
    found = []
    releases = matrix.releases  # newest first: a release follows every one listed after it
    for index, release in enumerate(releases):
        if release.is_published or release.planned is None:
            continue
        where = f"`planned` of [[release]] {release.name} in {matrix.path.name}"
        followed = releases[index + 1 :]
        for other in followed:
            if other.planned is not None and other.planned > release.planned:
                found.append(
                    f"release {release.name} is planned for {release.planned.isoformat()}, "
                    f"before {other.name} ({other.planned.isoformat()}) which it follows; "
                    f"check {where}"
                )
        published = [r.name for r in followed if r.is_published]
        if release.planned < today and published:
            found.append(
                f"release {release.name} is {release.status} but planned for "
                f"{release.planned.isoformat()}, a date already past; it follows the published "
                f"releases {', '.join(published)}, so the date likely lies before theirs "
                f"(a wrong year?); check {where}"
            )
    return found


def _pins_going_backwards(matrix: Matrix) -> list[str]:
    """A newer column pinning an older version than a column it precedes."""
    found = []
    releases = matrix.releases
    for index, newer in enumerate(releases[:-1]):
        older = releases[index + 1]
        for name, version in newer.pins.items():
            previous = older.pins.get(name)
            if previous is not None and version < previous:
                found.append(
                    f"release {newer.name} pins {name} {version}, older than {previous} in "
                    f"{older.name} which comes after it in the column order"
                )
    return found


def _missing_pins(matrix: Matrix) -> list[str]:
    found = []
    for release in matrix.releases:
        missing = [str(d.name) for d in matrix.dependencies if d.name not in release.pins]
        if missing:
            found.append(
                f"release {release.name} has no pin for {', '.join(missing)}: the page shows {MISSING}"
            )
        absent_cuda = [f.name for f in matrix.frameworks if f.name not in release.cuda]
        if absent_cuda:
            found.append(f"release {release.name} has no CUDA version for {', '.join(absent_cuda)}")
    return found


def _policy_glibc(policy: str) -> Version | None:
    """``manylinux_2_28`` -> 2.28 (PEP 600: ``manylinux_<major>_<minor>``)."""
    major, _, minor = policy.removeprefix("manylinux_").partition("_")
    try:
        return Version(f"{int(major)}.{int(minor)}")
    except (ValueError, InvalidVersion):
        return None


def _glibc_floors(matrix: Matrix) -> list[str]:
    """A documented glibc floor below what the wheels' manylinux policy needs."""
    found = []
    wheels = {w.name: w for w in matrix.wheels}
    for package in matrix.runtime_packages:
        wheel = wheels.get(package.name)
        if wheel is None:
            continue
        needed = _policy_glibc(wheel.policy)
        if needed is not None and package.glibc < needed:
            found.append(
                f"runtime package {package.name} documents glibc >={package.glibc}, but its "
                f"wheels are built for {wheel.policy} (glibc >={needed})"
            )
    return found


def _runtime_versions(matrix: Matrix) -> list[str]:
    """The runtime table's versions should be some release's version or pin."""
    found = []
    wheels = {w.name for w in matrix.wheels}
    for package in matrix.runtime_packages:
        if package.name in wheels:
            known = {r.version for r in matrix.releases}
            what = "the version of any release"
        else:
            known = {r.pins[package.name] for r in matrix.releases if package.name in r.pins}
            what = "pinned by any release"
            if not known:
                continue
        if package.version not in known:
            found.append(
                f"runtime package {package.name} is documented at {package.version}, which is not {what}"
            )
    return found


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def diff(committed: str, fresh: str, path: str) -> str:
    """A unified diff from the committed page to a fresh render ("" when equal)."""
    return "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile=f"{path} (generated from matrix.toml)",
        )
    )
