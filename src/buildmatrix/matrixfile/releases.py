"""The ``[[release]]`` tables: names, pins, and each release's CUDA table (stated or inherited).

A plain field of ``Release`` (a string, version, date, enum, ...) needs no code here:
``Section.record`` reads it by its type. Read here, and named in the ``record`` call,
are only the fields with a check of their own: ``name`` (characters, duplicates),
``status`` and ``planned`` (read first, in that order: a planned date needs an
unreleased status), ``pins`` and ``cuda`` (tables checked against other tables).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Container, Sequence
from dataclasses import dataclass

from packaging.utils import NormalizedName
from packaging.version import Version

from buildmatrix.matrixfile.section import Section
from buildmatrix.model import Release, ReleaseStatus

__all__ = ["read_releases"]


@dataclass(slots=True)
class _Draft:
    """A release read but for its CUDA table, which may name another release's."""

    section: Section
    cuda: Section
    release: Release  # its ``cuda`` still empty

    @property
    def name(self) -> str:
        return self.release.name


def read_releases(
    root: Section, dependencies: Sequence[str], frameworks: Sequence[str]
) -> tuple[Release, ...]:
    drafts = _drafts(root.tables("release"), dependencies)
    explicit = {
        draft.name: _cuda_table(draft.cuda, frameworks) for draft in drafts if not draft.cuda.has("inherit")
    }
    names = [draft.name for draft in drafts]
    releases: list[Release] = []
    for draft in drafts:
        inherited: str | None = None
        if draft.name in explicit:
            cuda = explicit[draft.name]
        else:
            inherited = _inherited(draft.cuda, names, explicit)
            cuda = explicit[inherited]
        draft.section.finish()
        releases.append(dataclasses.replace(draft.release, cuda=cuda, cuda_inherited_from=inherited))
    return tuple(releases)


def _drafts(sections: Sequence[Section], dependencies: Sequence[str]) -> list[_Draft]:
    drafts: list[_Draft] = []
    by_bare_name: dict[str, int] = {}  # "0.7.1" and "v0.7.1" name the same release
    for s in sections:
        name = s.name("name", s.get("name", str), "release")
        earlier = by_bare_name.setdefault(name.removeprefix("v"), len(drafts))
        if earlier != len(drafts):
            raise s.error(
                "name", f"duplicate release {name!r} (release[{earlier}] is {drafts[earlier].name!r})"
            )
        status = s.enum("status", ReleaseStatus, [r.value for r in ReleaseStatus])
        planned = s.optional("planned", datetime.date)
        if planned is not None and status is not ReleaseStatus.UNRELEASED:
            raise s.error("planned", "only an unreleased release has a planned date")
        pins = _pins(s.table("pins"), dependencies)
        # The plain fields (``display``, ``version``, any new one) are read from the model.
        release = s.record(
            Release,
            defaults={"display": name},
            name=name,
            status=status,
            planned=planned,
            pins=pins,
            cuda={},  # read once every release is known (``inherit`` may name a later one)
            cuda_inherited_from=None,
        )
        drafts.append(_Draft(section=s, cuda=s.table("cuda"), release=release))
    return drafts


def _pins(s: Section, dependencies: Sequence[str]) -> dict[NormalizedName, Version]:
    """[release.pins]: a version for every dependency, and nothing else."""
    pins: dict[NormalizedName, Version] = {}
    for key, _ in s.entries():
        s.choice(key, key, dependencies, "dependency")
        pins[NormalizedName(key)] = s.version(key)
    for dependency in dependencies:
        if dependency not in pins:
            raise s.error(None, f"missing pin for {dependency!r}")
    return pins


def _cuda_table(s: Section, frameworks: Sequence[str]) -> dict[str, Version]:
    """[release.cuda] stated: a CUDA version for every framework."""
    cuda: dict[str, Version] = {}
    for key, _ in s.entries():
        s.choice(key, key, frameworks, "framework")
        cuda[key] = s.version(key)
    for framework in frameworks:
        if framework not in cuda:
            raise s.error(None, f'missing CUDA version for {framework!r} (or write `inherit = "<release>"`)')
    s.finish()
    return cuda


def _inherited(s: Section, names: Sequence[str], explicit: Container[str]) -> str:
    """[release.cuda] with ``inherit = "<release>"``: a release that states its own table."""
    inherited = s.choice("inherit", s.get("inherit", str), names, "release")
    if inherited not in explicit:
        raise s.error(
            "inherit", f"release {inherited!r} inherits its CUDA table too; name a release that states it"
        )
    s.finish()
    return inherited
