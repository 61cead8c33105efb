"""The cibuildwheel backend: the matrix becomes cibuildwheel options, one call per package and arch.

The options go in ``CIBW_*`` environment variables, which cibuildwheel ranks
above the package's own ``[tool.cibuildwheel]`` table: the matrix decides what
is built and how it is tagged (build selectors, manylinux image, container
engine, repair command), the package keeps the rest (its test command, say).

- ``CIBW_BUILD``: the targets' build identifiers, ``cp312-manylinux_x86_64``
  (an abi3 package is built once, for its floor Python).
- ``CIBW_MANYLINUX_<ARCH>_IMAGE``: the matrix's pinned manylinux_2_28 image.
- ``CIBW_CONTAINER_ENGINE``: docker or podman, whichever answers.
- ``CIBW_REPAIR_WHEEL_COMMAND_LINUX``: ``auditwheel repair --only-plat --plat
  manylinux_2_28_<arch>`` with the package's ``--exclude`` list.
- ``--platform linux --archs <arch>`` on the command line; an arch other than
  the host's runs under QEMU, which happens only when ``--arch`` asks for it.

Pure packages need no container: they are built by the local backend.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildmatrix.errors import UsageError
from buildmatrix.expand import WheelTarget
from buildmatrix.model import Matrix, WheelKind
from buildmatrix.wheels.host import Host
from buildmatrix.wheels.jobs import Command, Job, Unbuildable
from buildmatrix.wheels.local import LocalBackend, job_slug, repair_arguments

__all__ = ["CibuildwheelBackend", "CibuildwheelOptions", "cibuildwheel_options"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CibuildwheelOptions:
    """One cibuildwheel call: its arguments (before the output folder) and environment."""

    package: str
    release: str
    arch: str
    identifiers: tuple[str, ...]
    args: tuple[str, ...]
    env: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "release": self.release,
            "arch": self.arch,
            "identifiers": list(self.identifiers),
            "args": list(self.args),
            "env": self.env,
        }


def cibuildwheel_options(
    matrix: Matrix, targets: Sequence[WheelTarget], *, engine: str
) -> CibuildwheelOptions:
    """The options of one call; ``targets`` share package, release and arch."""
    first = targets[0]
    package = first.package
    assert package.kind is WheelKind.NATIVE
    assert all(t.package == package and t.arch == first.arch for t in targets)
    arch = first.arch.name
    image = matrix.manylinux_images.get(arch)
    if image is None:
        msg = f"{matrix.path}: [manylinux] images has no image for {arch}"
        raise UsageError(msg)
    identifiers = tuple(dict.fromkeys(t.build_identifier for t in targets))
    repair = shlex.join(["auditwheel", *repair_arguments(first)])
    env = {
        "CIBW_BUILD": " ".join(identifiers),
        f"CIBW_MANYLINUX_{arch.upper()}_IMAGE": image,
        "CIBW_CONTAINER_ENGINE": engine,
        # cibuildwheel fills in {dest_dir} and {wheel}; the rest is quoted data.
        "CIBW_REPAIR_WHEEL_COMMAND_LINUX": f"{repair} -w {{dest_dir}} {{wheel}}",
        "CIBW_BUILD_FRONTEND": "build",
        "CIBW_BUILD_VERBOSITY": "1",
        # Reproducible archives: the source's commit time, when the host knows it.
        "CIBW_ENVIRONMENT_PASS_LINUX": "SOURCE_DATE_EPOCH",
    }
    return CibuildwheelOptions(
        package=str(package.name),
        release=first.release.name,
        arch=arch,
        identifiers=identifiers,
        args=("--platform", "linux", "--archs", arch),
        env=env,
    )


class CibuildwheelBackend:
    name = "cibuildwheel"

    def __init__(self, matrix: Matrix, host: Host, *, engine: str, emulate: bool) -> None:
        self.matrix = matrix
        self.host = host
        self.engine = engine
        self.emulate = emulate  # --arch was given: build a foreign arch under QEMU
        self.pure = LocalBackend(host)

    def plan_all(self, targets: Sequence[WheelTarget], work_root: Path) -> list[Job | Unbuildable]:
        planned: list[Job | Unbuildable] = []
        groups: dict[tuple[str, str, str], list[WheelTarget]] = {}
        for target in targets:
            if target.package.kind is WheelKind.PURE:
                planned.append(self.pure.plan(target, work_root))
            elif target.arch.name != self.host.arch and not self.emulate:
                planned.append(
                    Unbuildable(
                        target,
                        f"{target.arch.name} wheel on a {self.host.arch} host: run on an "
                        f"{target.arch.name} runner, or pass --arch {target.arch.name} to "
                        "build it under QEMU emulation",
                    )
                )
            else:
                key = (target.release.name, str(target.package.name), target.arch.name)
                groups.setdefault(key, []).append(target)
        for group in groups.values():
            planned.append(self._job(group, work_root))
        return planned

    def _job(self, targets: list[WheelTarget], work_root: Path) -> Job:
        options = cibuildwheel_options(self.matrix, targets, engine=self.engine)
        first = targets[0]
        slug = job_slug(first, per_python=False)
        work = work_root / slug
        source, dist = work / "src", work / "dist"
        command = Command(
            argv=(*_cibuildwheel(), *options.args, "--output-dir", str(dist), "."),
            env=options.env,
            cwd=source,
        )
        emulated = first.arch.name != self.host.arch
        return Job(
            slug=slug,
            backend=self.name,
            package=first.package,
            release=first.release,
            targets=tuple(targets),
            source_dir=source,
            output_dir=dist,
            commands=(command,),
            tools={
                "backend": self.name,
                "cibuildwheel": self.host.tool_version("cibuildwheel") or "unknown",
                "container_engine": self.engine,
                "manylinux_image": options.env[f"CIBW_MANYLINUX_{first.arch.name.upper()}_IMAGE"],
            },
            note=(
                f"{first.arch.name} under QEMU emulation (register binfmt first, e.g. "
                "docker/setup-qemu-action)"
                if emulated
                else ""
            ),
        )


def _cibuildwheel() -> tuple[str, ...]:
    if importlib.util.find_spec("cibuildwheel") is not None:
        return (sys.executable, "-m", "cibuildwheel")
    return ("cibuildwheel",)
