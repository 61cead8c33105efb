"""``Section.record``: a plain model field is declared once, on the dataclass.

The table readers are left as they are; the model classes they build are swapped
for copies with new fields, which must then be read, defaulted and refused with
the usual messages, key paths and lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from buildmatrix.errors import MatrixError
from buildmatrix.loader import parse_matrix
from buildmatrix.matrixfile import releases, tables
from buildmatrix.matrixfile.lines import LineIndex
from buildmatrix.matrixfile.section import Document, Section
from buildmatrix.model import Framework, Release, Status
from tests.conftest import MATRIX_PATH

REAL = MATRIX_PATH.read_text(encoding="utf-8")
V071 = 'name = "v0.7.1"\nstatus = "released"\n'


@dataclass(frozen=True, slots=True, kw_only=True)
class _NotedRelease(Release):
    notes: str = ""
    lts: bool = False
    end_of_life: datetime.date | None = None
    min_driver: Version | None = None
    support: Status = Status.SUPPORTED


@dataclass(frozen=True, slots=True, kw_only=True)
class _OwnedRelease(Release):
    owner: str  # no default: required


@dataclass(frozen=True, slots=True, kw_only=True)
class _LinkedFramework(Framework):
    homepage: str = ""


def _parse(text: str, tmp_path: Path) -> list[Release]:
    return list(parse_matrix(text, tmp_path / "matrix.toml").releases)


def _refused(text: str, tmp_path: Path) -> MatrixError:
    with pytest.raises(MatrixError) as caught:
        parse_matrix(text, tmp_path / "matrix.toml")
    return caught.value


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_new_plain_release_fields_are_read_by_type_with_no_reader_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(releases, "Release", _NotedRelease)
    added = "\n".join(
        [
            'notes = "LTS"',
            "lts = true",
            "end_of_life = 2026-06-30",
            'min_driver = "570.1"',
            'support = "Experimental"',
            "",
        ]
    )
    read = {r.name: r for r in _parse(REAL.replace(V071, V071 + added), tmp_path)}
    v071, main = read["v0.7.1"], read["main"]
    assert isinstance(v071, _NotedRelease)
    assert isinstance(main, _NotedRelease)
    assert (v071.notes, v071.lts, v071.end_of_life, v071.min_driver, v071.support) == (
        "LTS",
        True,
        datetime.date(2026, 6, 30),
        Version("570.1"),
        Status.EXPERIMENTAL,
    )
    # Absent: the dataclass default; every field the reader names is read as before.
    assert (main.notes, main.lts, main.end_of_life, main.min_driver, main.support) == (
        "",
        False,
        None,
        None,
        Status.SUPPORTED,
    )
    assert (v071.version, v071.cuda_inherited_from, main.cuda_inherited_from) == (
        Version("0.7.1"),
        None,
        "v0.7.1",
    )


@pytest.mark.parametrize(
    ("added", "problem"),
    [
        ("notes = 7", "expected a string, got an integer"),
        ('lts = "yes"', "expected a boolean, got a string"),
        ('end_of_life = "2026"', "expected a date, got a string"),
        ('min_driver = "five"', "'five' is not a valid PEP 440 version"),
        ('support = "Maybe"', "unknown support 'Maybe'; known: Supported, Experimental"),
        ('note = "LTS"', "unknown key 'note' (did you mean 'notes'?); known keys: cuda, display,"),
    ],
)
def test_a_bad_new_plain_field_gets_the_usual_message_path_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, added: str, problem: str
) -> None:
    monkeypatch.setattr(releases, "Release", _NotedRelease)
    text = REAL.replace(V071, V071 + added + "\n")
    error = _refused(text, tmp_path)
    key = added.split(" ", maxsplit=1)[0]
    assert (error.origin.key, error.origin.line) == (f"release[2].{key}", _line_of(text, added))
    assert error.problem.startswith(problem), error.problem


def test_a_new_plain_field_without_default_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(releases, "Release", _OwnedRelease)
    error = _refused(REAL, tmp_path)
    assert (error.origin.key, error.problem) == ("release[0]", "missing required key 'owner'")
    owned = REAL.replace('name = "main"\n', 'name = "main"\nowner = "ci"\n')
    error = _refused(owned, tmp_path)  # the next release lacks it
    assert (error.origin.key, error.problem) == ("release[1]", "missing required key 'owner'")


def test_a_new_plain_framework_field_is_read_with_no_reader_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "Framework", _LinkedFramework)
    text = REAL.replace("[framework.vllm]\n", '[framework.vllm]\nhomepage = "https://vllm.ai"\n')
    frameworks = {f.name: f for f in parse_matrix(text, tmp_path / "matrix.toml").frameworks}
    assert all(isinstance(f, _LinkedFramework) for f in frameworks.values())
    assert {name: f.homepage for name, f in frameworks.items() if isinstance(f, _LinkedFramework)} == {
        "sglang": "",
        "trtllm": "",
        "vllm": "https://vllm.ai",
    }
    assert frameworks["vllm"].extra == "vllm"


def test_a_field_that_is_not_plain_must_be_read_by_the_reader() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Tagged:
        tags: tuple[str, ...] = ()

    section = Section(Document(Path("m.toml"), LineIndex("")), {}, ("t",))
    with pytest.raises(TypeError, match=r"field 'tags' .* is not plain: read it in the table's reader"):
        section.record(Tagged)
    assert section.record(Tagged, tags=("a",)) == Tagged(tags=("a",))
    with pytest.raises(TypeError, match="Tagged has no field tag"):
        section.record(Tagged, tags=(), readers={"tag": lambda: "a"})
