"""Resolve an install for one platform with uv, without building anything, and pick its wheels.

``uv pip compile --no-build`` for the cell's platform (``--python-platform
<arch>-manylinux_2_<N>`` and ``--python-version``) gives the set of pins. uv
stops at the first package that has no usable wheel, which would hide the rest
of the set, so that package is recorded as *source only*, removed from the
resolution with a never-matching override, and replaced by the requirements
its source distribution states statically (PEP 643: Metadata-Version 2.2+ and
``Requires-Dist`` not dynamic) before uv runs again. Nothing is ever built;
without static metadata the package's dependencies are reported unknown.

Then, per pin, the file an installer would choose: the project's PEP 691 page
on the first index that has the project, the version's wheels, and the one
whose tag ranks first in the platform's supported tags (``packaging.tags``,
most specific manylinux level first).
"""

from __future__ import annotations

import datetime
import email.parser
import functools
import json
import re
import sys
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

from packaging import tags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from buildmatrix._call import call
from buildmatrix.errors import CommandFailedError
from buildmatrix.installs.http import HttpError, RangeNotSupported, download, fetch, fetch_range
from buildmatrix.installs.remotezip import RemoteWheel, WheelReadError
from buildmatrix.installs.scan import WheelFile
from buildmatrix.redact import redact_url

__all__ = ["UV_GLIBC_LEVELS", "Resolution", "SourceOnly", "resolve"]

# The glibc levels uv's --python-platform knows for manylinux targets.
UV_GLIBC_LEVELS = ("2.17", "2.28", *(f"2.{minor}" for minor in range(31, 41)))
PEP691 = "application/vnd.pypi.simple.v1+json"
MAX_ROUNDS = 25  # uv runs per cell: one per source-only package found, plus the last
PKG_INFO_LIMIT = 1 << 20
PAGE_WORKERS = 16
SDIST_LIMIT = 512 << 20  # a source distribution downloaded whole when its server ignores ranges
_UV_LOCK = threading.Lock()
_NO_WHEELS = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+?) has no usable wheels")
_NEVER = 'python_version < "0"'  # a marker no interpreter matches: removes a package


@dataclass(frozen=True, slots=True)
class SourceOnly:
    name: NormalizedName
    version: str
    requires: tuple[str, ...] | None  # from static metadata; None: unknown


@dataclass
class Resolution:
    resolved: bool
    pins: dict[NormalizedName, Version] = field(default_factory=dict)
    wheels: list[WheelFile] = field(default_factory=list)  # one per pin that has a wheel
    source_only: list[SourceOnly] = field(default_factory=list)
    no_wheel: list[str] = field(default_factory=list)  # pins with no file matching the platform
    error: str = ""


class _Pages:
    """PEP 691 project pages, fetched once per run and shared between threads."""

    def __init__(self) -> None:
        self.pages: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.lock = threading.Lock()

    def get(self, index: str, name: str) -> dict[str, Any] | None:
        key = (index, name)
        with self.lock:
            if key in self.pages:
                return self.pages[key]
        url = index.rstrip("/") + f"/{name}/"
        page: dict[str, Any] | None
        try:
            page = json.loads(fetch(url, PEP691).body)
            if not isinstance(page, dict):
                raise ValueError("not a JSON object")
        except HttpError as error:
            if "HTTP 404" in str(error):
                page = None
            else:
                raise
        except ValueError as error:
            msg = f"{redact_url(url)}: not a PEP 691 JSON page: {error}"
            raise HttpError(msg) from None
        if page is not None:
            page["_url"] = url
        with self.lock:
            self.pages[key] = page
        return page


PAGES = _Pages()


def platform_tags(python: str, arch: str, glibc: Version) -> list[tags.Tag]:
    """The tags an installer on that platform accepts, best first."""
    platforms: list[str] = []
    for minor in range(glibc.minor, 4, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(minor)
        if legacy is not None:
            platforms.append(f"{legacy}_{arch}")
    major, minor_py = (int(part) for part in python.split("."))
    version = (major, minor_py)
    return [
        *tags.cpython_tags(python_version=version, platforms=platforms),
        *tags.compatible_tags(
            python_version=version, interpreter=f"cp{major}{minor_py}", platforms=platforms
        ),
    ]


def _cutoff(as_of: datetime.date | None) -> str | None:
    """Everything uploaded on ``as_of`` counts: the next midnight UTC, RFC 3339."""
    if as_of is None:
        return None
    return (as_of + datetime.timedelta(days=1)).isoformat() + "T00:00:00Z"


def _uploaded_in_time(entry: dict[str, Any], cutoff: str | None) -> bool:
    if cutoff is None:
        return True
    uploaded = entry.get("upload-time")
    if not isinstance(uploaded, str):
        return True  # an index without PEP 700 times: uv cannot filter it either
    try:
        when = datetime.datetime.fromisoformat(uploaded.replace("Z", "+00:00"))
    except ValueError:
        return True
    return when < datetime.datetime.fromisoformat(cutoff.replace("Z", "+00:00"))


def _project_files(indexes: Sequence[str], name: str) -> list[dict[str, Any]]:
    for index in indexes:
        page = PAGES.get(index, name)
        if page is not None and page.get("files"):
            base = page["_url"]
            files = []
            for entry in page["files"]:
                if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
                    files.append({**entry, "url": urljoin(base, str(entry.get("url", "")))})
            return files
    return []


def choose_wheel(
    indexes: Sequence[str],
    name: NormalizedName,
    version: Version,
    ranked: Sequence[tags.Tag],
    cutoff: str | None,
) -> tuple[WheelFile | None, dict[str, Any] | None]:
    """The wheel an installer picks for ``name==version``, and the version's sdist entry."""
    rank = {tag: position for position, tag in enumerate(ranked)}
    best: tuple[int, bool, dict[str, Any]] | None = None
    sdist = None
    for entry in _project_files(indexes, name):
        filename = entry["filename"]
        if not _uploaded_in_time(entry, cutoff):
            continue
        if filename.endswith(".whl"):
            try:
                wheel_name, wheel_version, _build, wheel_tags = parse_wheel_filename(filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if wheel_name != name or wheel_version != version:
                continue
            positions = [rank[tag] for tag in wheel_tags if tag in rank]
            if not positions:
                continue
            yanked = bool(entry.get("yanked"))
            candidate = (min(positions), yanked, entry)
            if best is None or (candidate[1], candidate[0]) < (best[1], best[0]):
                best = candidate
        else:
            try:
                sdist_name, sdist_version = parse_sdist_filename(filename)
            except (InvalidSdistFilename, InvalidVersion):
                continue
            if sdist_name == name and sdist_version == version:
                sdist = entry
    if best is None:
        return None, sdist
    entry = best[2]
    hashes = entry.get("hashes") if isinstance(entry.get("hashes"), dict) else {}
    sha256 = hashes.get("sha256", "") if isinstance(hashes, dict) else ""
    size = entry.get("size")
    return (
        WheelFile(
            entry["filename"], entry["url"], str(sha256).lower(), size if isinstance(size, int) else None
        ),
        sdist,
    )


class _SequentialRange:
    """A forward-only file over a remote file, fetched in growing single ranges (for tar.gz).

    A server that ignores ranges gets the file downloaded once (at most ``SDIST_LIMIT``).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.position = 0
        self.size: int | None = None
        self.window = 64 << 10
        self.whole: IO[bytes] | None = None

    def read(self, size: int = -1) -> bytes:
        if self.whole is not None:
            return self.whole.read(size)
        want = self.window if size is None or size < 0 else max(size, 1)
        if self.size is not None and self.position >= self.size:
            return b""
        end = self.position + max(want, self.window) - 1
        if self.size is not None:
            end = min(end, self.size - 1)
        try:
            data, self.size = fetch_range(self.url, self.position, end)
        except RangeNotSupported:
            self.whole = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 (lives with self)
            download(self.url, self.whole, limit=SDIST_LIMIT)
            self.whole.seek(self.position)
            return self.whole.read(size)
        self.position += len(data)
        self.window = min(self.window * 2, 4 << 20)
        return data


def static_requirements(sdist: dict[str, Any]) -> tuple[str, ...] | None:
    """``Requires-Dist`` of a source distribution when PEP 643 says it is static, else None."""
    filename: str = sdist["filename"]
    url: str = sdist["url"]
    text = None
    try:
        if filename.endswith(".zip"):
            wheel = RemoteWheel(url)
            try:
                for info in wheel.members:
                    if info.filename.count("/") == 1 and info.filename.endswith("/PKG-INFO"):
                        text = wheel.open_member(info).read(PKG_INFO_LIMIT).decode("utf-8", "replace")
                        break
            finally:
                wheel.close()
        else:
            with tarfile.open(fileobj=_SequentialRange(url), mode="r|gz") as archive:  # type: ignore[call-overload]
                for member in archive:
                    if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                        handle = archive.extractfile(member)
                        if handle is not None:
                            text = handle.read(PKG_INFO_LIMIT).decode("utf-8", "replace")
                        break
    except (HttpError, WheelReadError, tarfile.TarError, OSError, EOFError):
        return None
    if text is None:
        return None
    metadata = email.parser.Parser().parsestr(text, headersonly=True)
    try:
        metadata_version = Version(metadata.get("Metadata-Version", "0"))
    except InvalidVersion:
        return None
    dynamic = {value.strip().lower() for value in metadata.get_all("Dynamic", [])}
    if metadata_version < Version("2.2") or "requires-dist" in dynamic:
        return None
    requires = []
    for raw in metadata.get_all("Requires-Dist", []):
        try:
            requires.append(str(Requirement(raw)))
        except InvalidRequirement:
            return None
    return tuple(requires)


@functools.cache
def uv_binary() -> str:
    """The uv this package depends on (its own binary), else whatever ``uv`` is on PATH."""
    with _UV_LOCK:  # find_uv_bin reads sysconfig, which is not safe to initialise from many threads
        try:
            from uv import find_uv_bin

            return str(find_uv_bin())
        except (ImportError, FileNotFoundError, TypeError):
            return "uv"


def _uv_command(
    requirements: Path,
    overrides: Path,
    *,
    python: str,
    arch: str,
    glibc: Version,
    indexes: Sequence[str],
    cutoff: str | None,
) -> list[str]:
    command = [
        uv_binary(), "pip", "compile", str(requirements),
        "--python-platform", f"{arch}-manylinux_2_{glibc.minor}",
        "--python-version", python,
        # Any interpreter serves a compile for another version: never let uv download one.
        "--python", sys.executable, "--no-python-downloads", "--no-config",
        "--no-build", "--no-header", "--no-annotate", "--quiet",
        "--override", str(overrides),
        "--index-url", indexes[0],
    ]  # fmt: skip
    for extra in indexes[1:]:
        command += ["--extra-index-url", extra]
    if cutoff is not None:
        command += ["--exclude-newer", cutoff]
    return command


def resolve(
    requirement: str,
    *,
    python: str,
    arch: str,
    glibc: Version,
    indexes: Sequence[str],
    as_of: datetime.date | None = None,
) -> Resolution:
    """Resolve ``requirement`` for the platform and choose each pin's wheel; failures are findings."""
    if str(glibc) not in UV_GLIBC_LEVELS:
        msg = f"glibc {glibc} is not a level uv resolves for (known: {', '.join(UV_GLIBC_LEVELS)})"
        raise ValueError(msg)
    cutoff = _cutoff(as_of)
    result = Resolution(resolved=False)
    extra_requirements: list[str] = []
    removed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="buildmatrix-installs-") as folder:
        requirements, overrides = Path(folder) / "requirements.in", Path(folder) / "overrides.txt"
        for _round in range(MAX_ROUNDS):
            requirements.write_text("\n".join([requirement, *extra_requirements]) + "\n", encoding="utf-8")
            overrides.write_text("".join(f"{name} ; {_NEVER}\n" for name in removed), encoding="utf-8")
            command = _uv_command(
                requirements, overrides, python=python, arch=arch, glibc=glibc, indexes=indexes, cutoff=cutoff
            )
            try:
                output = call(*command, capture_stdout=True, echo=False)
            except CommandFailedError as error:
                found = _NO_WHEELS.search(error.stderr)
                name = canonicalize_name(found.group(1)) if found else None
                if found is None or name is None or name in removed:
                    result.error = _uv_error(error.stderr)
                    return result
                version = found.group(2)
                requires = _sdist_requirements(indexes, name, version, cutoff)
                result.source_only.append(SourceOnly(name, version, requires))
                removed.append(name)
                extra_requirements += [
                    r for r in requires or () if "extra ==" not in r and "extra==" not in r
                ]
                continue
            break
        else:
            result.error = f"more than {MAX_ROUNDS} packages without usable wheels"
            return result
    if not _read_pins(output, result):
        return result
    _choose_wheels(result, indexes, platform_tags(python, arch, glibc), cutoff)
    result.resolved = True
    return result


def _read_pins(output: str, result: Resolution) -> bool:
    """uv's ``name==version`` lines into ``result.pins``; False (and the error set) on a line
    that is not one."""
    for raw_line in output.splitlines():
        line = raw_line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            pin = Requirement(line)
            (specifier,) = pin.specifier
            result.pins[canonicalize_name(pin.name)] = Version(specifier.version)
        except (InvalidRequirement, InvalidVersion, ValueError):
            result.error = f"cannot read uv's output line {line!r}"
            return False
    return True


def _choose_wheels(
    result: Resolution, indexes: Sequence[str], ranked: list[tags.Tag], cutoff: str | None
) -> None:
    """Each pin's best wheel for the platform (pages fetched in parallel), or a no-wheel finding."""
    pins = sorted(result.pins.items())
    with ThreadPoolExecutor(max_workers=PAGE_WORKERS) as pool:
        chosen = list(pool.map(lambda pin: choose_wheel(indexes, pin[0], pin[1], ranked, cutoff)[0], pins))
    for (name, version), wheel in zip(pins, chosen, strict=True):
        if wheel is None:
            result.no_wheel.append(f"{name}=={version}")
        else:
            result.wheels.append(wheel)


def _sdist_requirements(
    indexes: Sequence[str], name: NormalizedName, version: str, cutoff: str | None
) -> tuple[str, ...] | None:
    try:
        _wheel, sdist = choose_wheel(indexes, name, Version(version), [], cutoff)
    except (HttpError, InvalidVersion):
        return None
    return None if sdist is None else static_requirements(sdist)


def _uv_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " ".join(lines)[:2000] or "uv failed without a message"
