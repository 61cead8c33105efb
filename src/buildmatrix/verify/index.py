"""A small client of the package index's simple API (PEP 503 HTML, PEP 691 JSON).

It answers one question for ``verify --check-index``: which versions of a
distribution does the configured index publish, and which of them are yanked
(PEP 592). The index is pip's: ``--index-url`` and ``--extra-index-url`` given
to verify, else ``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL``, else what
``pip config list`` reports, else PyPI. Like pip, every index counts: a version
exists when any index lists a file of it, and it is yanked when every file of
it that the indexes list is yanked.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from buildmatrix.errors import UsageError

__all__ = [
    "DEFAULT_INDEX_URL",
    "IndexConfig",
    "IndexUnavailableError",
    "ProjectFiles",
    "SimpleIndexClient",
    "index_config",
]

DEFAULT_INDEX_URL = "https://pypi.org/simple/"
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
# The largest project pages (torch's PEP 691 JSON) are a few MB; a page past this is refused.
MAX_PAGE_BYTES = 64 * 1024 * 1024
TIMEOUT_SECONDS = 30
_JSON_TYPES = ("application/vnd.pypi.simple.v1+json",)


class IndexUnavailableError(UsageError):
    """The index could not be reached or answered nonsense (exit 2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexConfig:
    index_url: str
    extra_index_urls: tuple[str, ...] = ()
    source: str = "default"  # where the URLs came from, for the report

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.index_url, *self.extra_index_urls)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectFiles:
    """What the indexes list for one distribution: version -> yanked reasons per file."""

    name: NormalizedName
    # For each version, one entry per file: None when not yanked, else the reason.
    files: Mapping[Version, tuple[str | None, ...]] = field(default_factory=dict)
    found_on: tuple[str, ...] = ()  # index URLs that know the project

    def exists(self, version: Version) -> bool:
        return version in self.files

    def yanked_reason(self, version: Version) -> str | None:
        """The reason when every file of ``version`` is yanked ("" if none given), else None."""
        reasons = self.files.get(version, ())
        if reasons and all(reason is not None for reason in reasons):
            return next((r for r in reasons if r), "")
        return None


def index_config(
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    pip_config: Mapping[str, str] | None = None,
) -> IndexConfig:
    """pip's index URLs, in pip's order of precedence (command line, env, config)."""
    env = os.environ if environ is None else environ
    if index_url is not None or extra_index_urls:
        return IndexConfig(
            index_url=index_url or DEFAULT_INDEX_URL,
            extra_index_urls=tuple(extra_index_urls),
            source="command line",
        )
    if env.get("PIP_INDEX_URL") or env.get("PIP_EXTRA_INDEX_URL"):
        return IndexConfig(
            index_url=env.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL,
            extra_index_urls=tuple(env.get("PIP_EXTRA_INDEX_URL", "").split()),
            source="environment",
        )
    config = _pip_config() if pip_config is None else pip_config
    # pip reads [install] over [global]; ":env:" entries are the environment.
    found_index = _first(config, "index-url")
    found_extra = _first(config, "extra-index-url")
    if found_index is None and found_extra is None:
        return IndexConfig(index_url=DEFAULT_INDEX_URL)
    return IndexConfig(
        index_url=found_index or DEFAULT_INDEX_URL,
        extra_index_urls=tuple((found_extra or "").split()),
        source="pip config",
    )


def _first(config: Mapping[str, str], key: str) -> str | None:
    for section in (":env:", "install", "global"):
        value = config.get(f"{section}.{key}")
        if value:
            return value
    return None


def _pip_config() -> dict[str, str]:
    """``pip config list`` as a dict; empty when pip is not available."""
    from buildmatrix import _call
    from buildmatrix.errors import BuildMatrixError

    try:
        output = _call.call(sys.executable, "-m", "pip", "config", "list", capture_stdout=True, echo=False)
    except BuildMatrixError:
        return {}
    result: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            parsed = ast.literal_eval(value)  # pip prints values as Python string literals
        except (ValueError, SyntaxError):
            parsed = value
        result[key.strip()] = str(parsed)
    return result


class _AnchorParser(HTMLParser):
    """Anchors of a PEP 503 project page: (href, text, data-yanked or None)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str, str | None]] = []
        self._current: tuple[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        values = dict(attrs)
        yanked = values.get("data-yanked") if "data-yanked" in values else None
        if "data-yanked" in values and yanked is None:
            yanked = ""  # the attribute without a value: yanked, no reason
        self._current = (values.get("href") or "", yanked)
        self._text = []

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            href, yanked = self._current
            self.anchors.append((href, "".join(self._text).strip(), yanked))
            self._current = None


def _version_of(filename: str, name: NormalizedName) -> Version | None:
    try:
        if filename.endswith(".whl"):
            parsed_name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            parsed_name, version = parse_sdist_filename(filename)
        else:
            return None  # eggs, installers: pip does not install them either
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return version if parsed_name == name else None


class SimpleIndexClient:
    """Fetch and cache project pages of every configured index."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self._cache: dict[NormalizedName, ProjectFiles] = {}

    def project(self, name: str) -> ProjectFiles:
        canonical = canonicalize_name(name)
        if canonical not in self._cache:
            self._cache[canonical] = self._fetch_all(canonical)
        return self._cache[canonical]

    def _fetch_all(self, name: NormalizedName) -> ProjectFiles:
        files: dict[Version, list[str | None]] = {}
        found_on: list[str] = []
        for base in self.config.urls:
            entries = self._fetch(base, name)
            if entries is None:
                continue
            found_on.append(base)
            for filename, yanked in entries:
                version = _version_of(filename, name)
                if version is not None:
                    files.setdefault(version, []).append(yanked)
        return ProjectFiles(
            name=name,
            files={version: tuple(reasons) for version, reasons in files.items()},
            found_on=tuple(found_on),
        )

    def _fetch(self, base: str, name: NormalizedName) -> list[tuple[str, str | None]] | None:
        """(filename, yanked reason or None) of one index's page; None when it has no page."""
        url = base.rstrip("/") + "/" + name + "/"
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme == "file":
            # pip reads a file:// index's project directory through its index.html.
            path = Path(urllib.request.url2pathname(parsed.path)) / "index.html"
            if not path.is_file():
                return None
            return _parse_html(path.read_text(encoding="utf-8", errors="replace"))
        if parsed.scheme not in ("http", "https"):
            msg = f"index URL {base!r}: only http, https and file URLs are supported"
            raise IndexUnavailableError(msg)
        headers = {"Accept": ACCEPT}
        if parsed.username is not None:
            # As pip does: user info in the URL is HTTP basic auth, sent as a header and
            # never part of the address (nor of any message: see buildmatrix.redact).
            user = urllib.parse.unquote(parsed.username)
            password = urllib.parse.unquote(parsed.password or "")
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            url = urllib.parse.urlunsplit(parsed._replace(netloc=parsed.netloc.rpartition("@")[2]))
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                content_type = response.headers.get_content_type()
                body = response.read(MAX_PAGE_BYTES + 1)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            msg = f"index {base}: {url} answered HTTP {error.code} {error.reason}"
            raise IndexUnavailableError(msg) from error
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            msg = f"index {base} is unreachable ({url}): {error}"
            raise IndexUnavailableError(msg) from error
        if len(body) > MAX_PAGE_BYTES:
            msg = f"index {base}: {url} is larger than {MAX_PAGE_BYTES} bytes; refusing to read it"
            raise IndexUnavailableError(msg)
        text = body.decode("utf-8", errors="replace")
        if content_type in _JSON_TYPES:
            return _parse_json(text, url)
        return _parse_html(text)


def _parse_html(text: str) -> list[tuple[str, str | None]]:
    parser = _AnchorParser()
    parser.feed(text)
    result = []
    for href, label, yanked in parser.anchors:
        filename = label or urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
        result.append((filename, yanked))
    return result


def _parse_json(text: str, url: str) -> list[tuple[str, str | None]]:
    try:
        document: Any = json.loads(text)
        files: Iterable[Any] = document["files"]
    except (ValueError, KeyError, TypeError) as error:
        msg = f"{url}: not a PEP 691 project page: {error}"
        raise IndexUnavailableError(msg) from error
    result: list[tuple[str, str | None]] = []
    for entry in files:
        yanked = entry.get("yanked", False)
        # PEP 592/691: false, true (no reason) or the reason as a string.
        reason: str | None = None
        if yanked is not False and yanked is not None:
            reason = yanked if isinstance(yanked, str) else ""
        result.append((str(entry["filename"]), reason))
    return result
