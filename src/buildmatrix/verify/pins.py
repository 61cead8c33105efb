"""Exact comparison of declared requirements with the ones the matrix generates.

Per extra (and for the base requirements), every requirement the matrix
generates must be declared once with the same name, extras, specifier set and
marker, and nothing else may be declared: a looser specifier that still admits
the pin is a difference, reported with that fact as detail, never "ok".

Requires-Dist is grouped by extra in one pass: each requirement's marker is
split into its ``extra == "X"`` clause and the rest, so the work is linear in
the size of Requires-Dist whatever the number of extras.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from buildmatrix.model import Release
from buildmatrix.verify.report import Check

__all__ = ["Extra", "compare_requirements", "group_by_extra", "marker_text"]

# A requirement's extra, as a key of the per-extra mapping; None = always required.
Extra = NormalizedName | None


def _is_atom(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 3


def _serialize(items: Any) -> str:
    """packaging's parsed marker list back to text (parentheses for nested groups)."""
    parts = []
    for item in items:
        if _is_atom(item):
            parts.append(" ".join(part.serialize() for part in item))
        elif isinstance(item, list):
            inner = _unwrap(item)
            parts.append(
                _serialize(inner) if len(inner) == 1 and _is_atom(inner[0]) else f"({_serialize(inner)})"
            )
        else:
            parts.append(str(item))
    return " ".join(parts)


def _unwrap(items: list[Any]) -> list[Any]:
    while len(items) == 1 and isinstance(items[0], list):
        items = items[0]
    return items


def _extra_of(atom: tuple[Any, Any, Any]) -> str | None:
    """``X`` of an ``extra == "X"`` (or ``"X" == extra``) atom, else None."""
    left, op, right = atom
    if op.value != "==":
        return None
    if type(left).__name__ == "Variable" and left.value == "extra" and type(right).__name__ == "Value":
        return str(right.value)
    if type(right).__name__ == "Variable" and right.value == "extra" and type(left).__name__ == "Value":
        return str(left.value)
    return None


def _mentions_extra(items: Iterable[Any]) -> bool:
    for item in items:
        if _is_atom(item) and any(type(p).__name__ == "Variable" and p.value == "extra" for p in item):
            return True
        if isinstance(item, list) and _mentions_extra(item):
            return True
    return False


def marker_text(marker: Marker | None) -> str:
    """One spelling per marker: redundant parentheses dropped, packaging's quoting."""
    if marker is None:
        return ""
    items = _unwrap(list(marker._markers))
    return str(Marker(_serialize(items))) if items else ""


def _split(requirement: Requirement) -> tuple[Extra, str, bool]:
    """(extra, the rest of the marker as text, whether the marker had the simple form)."""
    if requirement.marker is None:
        return None, "", True
    items = _unwrap(list(requirement.marker._markers))
    if not _mentions_extra(items):
        return None, marker_text(requirement.marker), True
    if "or" not in items:
        terms = [item for item in items if item != "and"]
        extras = [_extra_of(t) for t in terms if _is_atom(t)]
        named = [e for e in extras if e is not None]
        rest = [t for t in terms if not (_is_atom(t) and _extra_of(t) is not None)]
        if len(named) == 1 and not _mentions_extra(rest):
            joined: list[Any] = []
            for term in rest:
                joined += ["and", term] if joined else [term]
            return canonicalize_name(named[0]), str(Marker(_serialize(joined))) if joined else "", True
    return None, marker_text(requirement.marker), False


def group_by_extra(
    requires: Sequence[Requirement],
) -> tuple[dict[Extra, list[tuple[Requirement, str]]], list[Requirement]]:
    """Requires-Dist by extra, each with its marker less the extra clause; and the
    requirements whose marker names an extra in a form other than ``... and extra == "X"``
    (they cannot be attributed to one extra and are reported, never guessed)."""
    grouped: dict[Extra, list[tuple[Requirement, str]]] = {None: []}
    unclear: list[Requirement] = []
    for requirement in requires:
        extra, rest, simple = _split(requirement)
        if not simple:
            unclear.append(requirement)
            continue
        grouped.setdefault(extra, []).append((requirement, rest))
    return grouped, unclear


def _bare(requirement: Requirement) -> str:
    copy = Requirement(str(requirement))
    copy.marker = None
    return str(copy)


def _shown(requirement: Requirement, marker: str) -> str:
    return _bare(requirement) + (f"; {marker}" if marker else "")


def _where(extra: Extra) -> str:
    return "base requirements" if extra is None else f"extra {extra!r}"


def compare_requirements(
    subject: str,
    release: Release,
    extra: Extra,
    expected: Sequence[Requirement],
    declared: Sequence[tuple[Requirement, str]] | None,
) -> list[Check]:
    """Checks for one extra: one per expected requirement, one per unexpected one.

    ``declared`` pairs each requirement with its marker text less the extra
    clause (``group_by_extra``); None when the extra is not there at all.
    """
    where = _where(extra)
    checks: list[Check] = []
    if declared is None:
        return [
            Check(
                subject=subject,
                name=canonicalize_name(r.name),
                expected=_shown(r, marker_text(r.marker)),
                found="(no such extra)",
                ok=False,
                detail=f"{where} is missing ({release.name})",
            )
            for r in expected
        ]
    by_name: dict[NormalizedName, list[tuple[Requirement, str]]] = {}
    for requirement, marker in declared:
        by_name.setdefault(canonicalize_name(requirement.name), []).append((requirement, marker))
    for wanted in expected:
        found = by_name.pop(canonicalize_name(wanted.name), [])
        checks.append(_expected_check(subject, release, where, wanted, found))
    for name, extra_found in by_name.items():
        for requirement, marker in extra_found:
            checks.append(
                Check(
                    subject=subject,
                    name=name,
                    expected="(not generated)",
                    found=_shown(requirement, marker),
                    ok=False,
                    detail=f"{where}: unexpected requirement, the matrix generates none on {name} "
                    f"({release.name})",
                )
            )
    return checks


def _expected_check(
    subject: str, release: Release, where: str, wanted: Requirement, found: Sequence[tuple[Requirement, str]]
) -> Check:
    """One expected requirement against the declared ones of its name (none, one, or more)."""
    name = canonicalize_name(wanted.name)
    wanted_marker = marker_text(wanted.marker)
    if not found:
        return Check(
            subject=subject,
            name=name,
            expected=_shown(wanted, wanted_marker),
            found="(not required)",
            ok=False,
            detail=f"{where} does not require {name} ({release.name})",
        )
    problems = []
    if len(found) > 1:
        problems.append(f"required {len(found)} times")
    requirement, marker = found[0]
    problems += _differences(release, wanted, wanted_marker, requirement, marker)
    return Check(
        subject=subject,
        name=name,
        expected=_shown(wanted, wanted_marker),
        found="; ".join(_shown(r, m) for r, m in found) if len(found) > 1 else _shown(requirement, marker),
        ok=not problems,
        detail=f"{where}: "
        + ("; ".join(problems) if problems else "equals what the matrix generates")
        + f" ({release.name})",
    )


def _differences(
    release: Release, wanted: Requirement, wanted_marker: str, found: Requirement, found_marker: str
) -> list[str]:
    problems = []
    wanted_extras = {canonicalize_name(e) for e in wanted.extras}
    found_extras = {canonicalize_name(e) for e in found.extras}
    if wanted_extras != found_extras:
        problems.append(
            f"extras [{','.join(sorted(found_extras))}] differ from [{','.join(sorted(wanted_extras))}]"
        )
    if found.specifier != wanted.specifier:
        text = f"specifier {str(found.specifier) or '(any)'} differs from {wanted.specifier}"
        pin = release.pins.get(canonicalize_name(wanted.name))
        if pin is not None:
            admits = found.specifier.contains(pin, prereleases=True)
            text += f" ({'admits' if admits else 'does not admit'} the pin {pin})"
        problems.append(text)
    if (found.url or None) != (wanted.url or None):
        problems.append(f"URL {found.url or '(none)'} differs from {wanted.url or '(none)'}")
    if found_marker != wanted_marker:
        problems.append(f"marker {found_marker or '(none)'} differs from {wanted_marker or '(none)'}")
    return problems


def compare_all(
    subject: str,
    release: Release,
    expected: Mapping[Extra, Sequence[Requirement]],
    declared: Mapping[Extra, Sequence[tuple[Requirement, str]]],
    notes: list[str] | None = None,
) -> list[Check]:
    """Every extra both ways: expected extras (missing, different) and undeclared ones.

    The base requirements are held to the same rule only for the distributions the
    matrix pins (a ``vllm`` there would bypass the extras); a meta package's other
    runtime dependencies (``click``, ``fastapi``) are not the matrix's to say, and
    are listed in ``notes``."""
    guarded = {canonicalize_name(name) for name in release.pins}
    guarded |= {canonicalize_name(r.name) for requirements in expected.values() for r in requirements}
    checks = []
    for extra, requirements in expected.items():
        found = declared.get(extra)
        if extra is None and found is not None:
            others = [r for r, _ in found if canonicalize_name(r.name) not in guarded]
            if others and notes is not None:
                notes.append(
                    f"{subject}: base requirements the matrix does not pin, not checked: "
                    + ", ".join(str(r) for r in others)
                )
            found = [(r, m) for r, m in found if canonicalize_name(r.name) in guarded]
        checks += compare_requirements(subject, release, extra, requirements, found)
    for extra, found in declared.items():
        if extra not in expected and found:
            checks += compare_requirements(subject, release, extra, (), found)
    return checks
