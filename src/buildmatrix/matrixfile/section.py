"""One table of matrix.toml being read: typed access by key, the value validators,
and unknown keys as errors. Only a ``Section`` marks its keys as used.

``Section.record`` builds a model record from its dataclass: a *plain* field
(``str``, ``bool``, ``int``, ``datetime.date``, ``Version``, a ``StrEnum``, or
one of these ``| None``) is read by its type under its own name, required unless
the field has a default. So a new plain field is declared once, in
``buildmatrix.model``. A field that needs its own check (names, distributions,
pins, paths, refs, choices among other tables' names) is read by the table's
reader and named in its ``record`` call: that one is declared in both places.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import string
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from buildmatrix.errors import MatrixError, Origin, did_you_mean
from buildmatrix.matrixfile.lines import KeyPath, LineIndex, dotted
from buildmatrix.model import Status

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Document", "Section", "image_ref_problem", "url_problem"]

# Characters allowed in names, ids and tags that reach commands, ARGs and labels.
# Anything else (spaces, quotes, `;`, `$`, backticks, ...) is rejected at load time.
NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
_PATH_CHARS = NAME_CHARS | {"/"}
_REF_CHARS = NAME_CHARS | {"/", ":", "@"}
_URL_UNSAFE = frozenset(" \t\r\n\"'`$;&|<>(){}\\")
_HEX = frozenset(string.hexdigits.lower())

T = TypeVar("T")
R = TypeVar("R", bound="DataclassInstance")

_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    list: "an array",
    dict: "a table",
    datetime.date: "a date",
}


def type_name(value: object) -> str:
    for kind, name in _TYPE_NAMES.items():
        if type(value) is kind:
            return name
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class Document:
    """The matrix file being read: where an error points (file, key path, line)."""

    path: Path
    index: LineIndex

    def error(self, path: KeyPath, problem: str) -> MatrixError:
        return MatrixError(Origin(str(self.path), dotted(path), self.index.line(path)), problem)


class Section:
    """A TOML table being read: typed access by key, unknown keys are errors."""

    def __init__(self, document: Document, data: object, path: KeyPath) -> None:
        self.document = document
        self.path = path
        if not isinstance(data, dict):
            raise document.error(path, f"expected a table, got {type_name(data)}")
        self.data: dict[str, Any] = data
        self._used: set[str] = set()

    # -- access ----------------------------------------------------------------------

    def error(self, key: str | int | None, problem: str) -> MatrixError:
        return self.document.error(self.path if key is None else (*self.path, key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type[T], default: T | None = None) -> T:
        self._used.add(key)
        if key not in self.data:
            if default is None:
                raise self.error(None, f"missing required key {key!r}")
            return default
        value = self.data[key]
        # bool is an int in Python; TOML keeps them apart, so do we.
        if type(value) is not kind:
            raise self.error(key, f"expected {_TYPE_NAMES[kind]}, got {type_name(value)}")
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        if key not in self.data:
            self._used.add(key)
            return None
        return self.get(key, kind)

    def entries(self) -> Iterator[tuple[str, Any]]:
        """Every key and value of a table whose keys are data (``[release.pins]``), each used."""
        for key, value in self.data.items():
            self._used.add(key)
            yield key, value

    def strings(self, key: str, default: Sequence[str] | None = None) -> list[str]:
        if key not in self.data and default is not None:
            self._used.add(key)
            return list(default)
        values = self.get(key, list)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise self.error(key, f"item {index} must be a string, got {type_name(value)}")
        if len(set(values)) != len(values):
            duplicates = sorted({v for v in values if values.count(v) > 1})
            raise self.error(key, f"duplicate values: {', '.join(duplicates)}")
        return values

    def table(self, key: str) -> Section:
        """A required table (``[key]``) as a section."""
        return Section(self.document, self.get(key, dict), (*self.path, key))

    def optional_table(self, key: str) -> Section | None:
        if key not in self.data:
            self._used.add(key)
            return None
        return self.table(key)

    def tables(self, key: str) -> list[Section]:
        """An array of tables (``[[key]]``), each as a section."""
        values = self.get(key, list)
        if not values:
            raise self.error(key, "must not be empty")
        return [Section(self.document, item, (*self.path, key, i)) for i, item in enumerate(values)]

    def optional_tables(self, key: str) -> list[Section]:
        if key not in self.data:
            self._used.add(key)
            return []
        return self.tables(key)

    def subtables(self, key: str, *, allow_empty: bool = False) -> list[tuple[str, Section]]:
        """A table of tables (``[key.name]``) as (name, section) pairs in file order."""
        table = self.get(key, dict)
        if not table and not allow_empty:
            raise self.error(key, "must not be empty")
        return [
            (name, Section(self.document, value, (*self.path, key, name))) for name, value in table.items()
        ]

    def finish(self) -> None:
        for key in self.data:
            if key not in self._used:
                known = sorted(self._used)
                raise self.error(
                    key,
                    f"unknown key {key!r}{did_you_mean(key, known)}; known keys: {', '.join(known)}",
                )

    # -- records -------------------------------------------------------------------

    def record(
        self,
        cls: type[R],
        *,
        defaults: Mapping[str, object] | None = None,
        readers: Mapping[str, Callable[[], object]] | None = None,
        **given: object,
    ) -> R:
        """``cls`` built from this table: ``given`` values as they are (read by the caller
        before), and every other field in field order, by its ``readers`` entry if it has
        one, else as a plain field by its type, with ``defaults`` before the field's own."""
        readers = readers or {}
        defaults = defaults or {}
        values = dict(given)
        misnamed = (set(readers) | set(defaults)) - {field.name for field in dataclasses.fields(cls)}
        if misnamed:  # a programming error: the field would silently be read as plain
            raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(misnamed))}")
        for field in dataclasses.fields(cls):
            if not field.init or field.name in given:
                continue
            if field.name in readers:
                values[field.name] = readers[field.name]()
                continue
            default = defaults.get(field.name, field.default)
            values[field.name] = self._plain(field.name, _plain_hints(cls)[field.name], default)
        return cls(**values)

    def _plain(self, key: str, hint: object, default: object) -> object:
        kind = _optional_of(hint)
        read = self._plain_reader(key, hint if kind is None else kind)
        if key not in self.data and (default is not dataclasses.MISSING or kind is not None):
            self._used.add(key)
            return None if default is dataclasses.MISSING else default
        return read()

    def _plain_reader(self, key: str, kind: object) -> Callable[[], object]:
        if kind is Version:
            return lambda: self.version(key)
        if isinstance(kind, type) and issubclass(kind, enum.StrEnum):
            members: type[enum.StrEnum] = kind
            return lambda: self.enum(key, members, [member.value for member in members])
        if kind in (str, bool, int, datetime.date):
            return lambda: self.get(key, typing.cast(type, kind))
        # A programming error, raised whether or not the key is in the file.
        raise TypeError(f"field {key!r} ({kind!r}) is not plain: read it in the table's reader")

    # -- value validators ------------------------------------------------------------

    def version(self, key: str, value: str | None = None) -> Version:
        raw = self.get(key, str) if value is None else value
        try:
            return Version(raw)
        except InvalidVersion:
            raise self.error(key, f"{raw!r} is not a valid PEP 440 version") from None

    def python(self, key: str | None, raw: str) -> str:
        try:
            parsed = Version(raw)
        except InvalidVersion:
            parsed = None
        if parsed is None or len(parsed.release) != 2 or str(parsed) != raw or parsed.major != 3:
            raise self.error(key, f"{raw!r} is not a Python version of the form 3.12")
        return raw

    def name(self, key: str | None, raw: str, what: str = "name") -> str:
        if not raw or not set(raw) <= NAME_CHARS or raw[0] in "-.":
            raise self.error(key, f"{what} {raw!r} may only contain letters, digits, '.', '_' and '-'")
        return raw

    def distribution(self, key: str | None, raw: str) -> NormalizedName:
        try:
            return canonicalize_name(raw, validate=True)
        except InvalidName:
            raise self.error(key, f"{raw!r} is not a valid distribution name") from None

    def relative_path(self, key: str) -> Path:
        raw = self.get(key, str)
        pure = PurePosixPath(raw)
        if not raw or not set(raw) <= _PATH_CHARS or pure.is_absolute() or ".." in pure.parts:
            raise self.error(
                key,
                f"{raw!r} must be a relative path inside the matrix's folder "
                "(letters, digits, '.', '_', '-', '/'; no '..')",
            )
        return self.document.path.parent.resolve() / pure

    def image_ref(self, key: str | None, raw: str) -> str:
        """A pinned image reference: ``registry/name:tag`` or ``...@sha256:<64 hex>``."""
        problem = image_ref_problem(raw)
        if problem:
            raise self.error(key, f"image reference {raw!r}: {problem}")
        return raw

    def url(self, key: str) -> str:
        raw = self.get(key, str)
        problem = url_problem(raw)
        if problem:
            raise self.error(key, problem)
        return raw

    def choice(self, key: str | None, raw: str, choices: Sequence[str], what: str) -> str:
        if raw not in choices:
            raise self.error(
                key,
                f"unknown {what} {raw!r}{did_you_mean(raw, choices)}; known: {', '.join(choices)}",
            )
        return raw

    def enum(self, key: str, kind: Callable[[str], T], choices: Sequence[str]) -> T:
        raw = self.get(key, str)
        return kind(self.choice(key, raw, choices, key))

    def status(self) -> Status:
        return self.enum("status", Status, [s.value for s in Status])

    def optional_glibc(self) -> Version | None:
        raw = self.optional("glibc", str)
        if raw is None:
            return None
        version = self.version("glibc", raw)
        if len(version.release) != 2 or str(version) != raw or version.major != 2:
            raise self.error("glibc", f"{raw!r} is not a glibc version of the form 2.35")
        return version

    def policy(self, key: str | None, raw: str) -> str:
        family, _, glibc = raw.partition("_")
        major, _, minor = glibc.partition("_")
        if family not in ("manylinux", "musllinux") or not major.isdigit() or not minor.isdigit():
            raise self.error(key, f"{raw!r} is not a platform policy such as manylinux_2_28")
        return raw

    def image_refs(self, key_kind: Callable[[str], str]) -> dict[str, str]:
        """A table of ``key = "pinned image ref"``; ``key_kind`` checks (and may rewrite) a key."""
        refs: dict[str, str] = {}
        for key, ref in self.entries():
            chosen = key_kind(key)
            if not isinstance(ref, str):
                raise self.error(key, f"expected a string, got {type_name(ref)}")
            refs[chosen] = self.image_ref(key, ref)
        return refs

    def unique(self, key: str, values: Sequence[object]) -> None:
        """No two of ``values`` (one per item of the array ``key``) are the same."""
        seen: set[object] = set()
        for index, value in enumerate(values):
            if value in seen:
                raise self.document.error((*self.path, key, index), f"duplicate {key} {str(value)!r}")
            seen.add(value)


@functools.cache
def _plain_hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _optional_of(hint: object) -> object | None:
    """``X`` for a hint ``X | None``, else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union) and type(None) in args:
        rest: list[object] = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return None


def url_problem(url: str, schemes: tuple[str, ...] = ("https",)) -> str:
    """Why ``url`` is not a URL safe to pass on (scheme, host, no spaces or quotes), or ``""``."""
    from buildmatrix.redact import has_credentials, redact_url

    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. an unbalanced "[" in the host ("Invalid IPv6 URL")
        hostname = None
    if not hostname or parts.scheme not in schemes or set(url) & _URL_UNSAFE:
        return f"{redact_url(url)!r} is not an {' or '.join(schemes)} URL without spaces or quotes"
    if has_credentials(url):
        # It would be written into labels, docs and logs, where credentials must never go.
        return f"{redact_url(url)!r} carries credentials (user info or a token in the query)"
    return ""


def image_ref_problem(ref: str) -> str:
    """Why ``ref`` is not a pinned image reference, or ``""`` when it is."""
    if not ref or not set(ref) <= _REF_CHARS:
        return "only letters, digits and . _ - / : @ are allowed"
    name, at, digest = ref.partition("@")
    if at:
        algorithm, _, hexdigits = digest.partition(":")
        if algorithm != "sha256" or len(hexdigits) != 64 or not set(hexdigits) <= _HEX:
            return "a digest must be sha256:<64 lowercase hex digits>"
    last = name.rsplit("/", 1)[-1]
    repository, colon, tag = last.partition(":")
    if not repository or any(not part for part in name.split("/")):
        return "empty name component"
    if not colon and not at:
        return "no tag or digest: pin it (e.g. :12.8.1-runtime-ubuntu24.04 or @sha256:...)"
    if colon and (not tag or len(tag) > 128 or tag[0] in ".-"):
        return f"invalid tag {tag!r}"
    if tag == "latest":
        return "`latest` is not a pin: name a version tag or a digest"
    return ""
