"""Where a key of matrix.toml is defined: key paths to line numbers, for error messages."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["KeyPath", "LineIndex", "dotted"]

KeyPath = tuple[str | int, ...]


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class LineIndex:
    """Maps key paths to the line that defines them, using tomllib on single lines.

    tomllib reports no positions for valid documents, so each header or
    ``key = value`` line is parsed on its own; lines inside multi-line values
    simply do not parse and are skipped.
    """

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        array_counts: dict[KeyPath, int] = {}
        table: KeyPath = ()
        in_multiline_string = False
        for number, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if stripped.count('"""') % 2 == 1 or stripped.count("'''") % 2 == 1:
                in_multiline_string = not in_multiline_string
                if not in_multiline_string:
                    continue
            elif in_multiline_string:
                continue
            if not stripped or stripped.startswith("#"):
                continue
            try:
                fragment = tomllib.loads(stripped)
            except tomllib.TOMLDecodeError:
                try:  # the opening line of a multi-line value: record its key
                    fragment = tomllib.loads(stripped.split("=", 1)[0] + "= 0")
                except tomllib.TOMLDecodeError:
                    continue
            if stripped.startswith("[["):
                header = self._with_indexes(self._first_path(fragment), array_counts)
                array_counts[header] = array_counts.get(header, -1) + 1
                table = (*header, array_counts[header])
                self.lines.setdefault(table, number)
            elif stripped.startswith("["):
                table = self._with_indexes(self._first_path(fragment), array_counts)
                self.lines.setdefault(table, number)
            else:
                for key in self._leaf_paths(fragment):
                    self.lines.setdefault((*table, *key), number)

    @staticmethod
    def _first_path(fragment: Any) -> KeyPath:
        path: list[str | int] = []
        while isinstance(fragment, dict) and len(fragment) == 1:
            key, fragment = next(iter(fragment.items()))
            path.append(key)
            if isinstance(fragment, list):
                fragment = fragment[0] if fragment else {}
        return tuple(path)

    @staticmethod
    def _with_indexes(path: KeyPath, array_counts: Mapping[KeyPath, int]) -> KeyPath:
        """``[release.pins]`` after ``[[release]]`` means the last release's pins."""
        out: list[str | int] = []
        for part in path:
            out.append(part)
            count = array_counts.get(tuple(out))
            if count is not None and part != path[-1]:
                out.append(count)
        return tuple(out)

    @classmethod
    def _leaf_paths(cls, fragment: Mapping[str, Any]) -> Iterable[KeyPath]:
        for key, value in fragment.items():
            yield (key,)
            if isinstance(value, dict):
                for sub in cls._leaf_paths(value):
                    yield (key, *sub)

    def line(self, path: KeyPath) -> int | None:
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None
