"""What the toolkit tells a package about the release it is being built for.

Before a build, the package's source is staged in a temporary folder and
``.buildmatrix/build.json`` is written into it. The file holds the release's
version, the requirements the matrix generates (the meta package's
``ai-dynamo-runtime==<version>`` and one extra per framework from the release's
pins) and the pins themselves. The package's build script reads it (the bundled
examples do it in ``setup.py``), so no version or pin is typed in the package.

After the build, ``metadata_problems`` reads the wheel's METADATA and checks
that the package really carried those values into the wheel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from buildmatrix.model import Matrix, Release, WheelPackage
from buildmatrix.wheelmeta import read_wheel_metadata

__all__ = ["BUILD_FILE", "SCHEMA", "BuildInfo", "build_info", "metadata_problems"]

# Relative to the staged package root. A hidden folder: no build backend
# mistakes it for a Python package, and it never exists in the user's tree.
BUILD_FILE = Path(".buildmatrix") / "build.json"
SCHEMA = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildInfo:
    package: str
    release: str
    version: str
    dependencies: tuple[Requirement, ...]
    optional_dependencies: Mapping[str, tuple[Requirement, ...]]
    pins: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "package": self.package,
            "release": self.release,
            "version": self.version,
            "dependencies": [str(r) for r in self.dependencies],
            "optional_dependencies": {
                extra: [str(r) for r in requirements]
                for extra, requirements in self.optional_dependencies.items()
            },
            "pins": dict(self.pins),
        }

    def text(self) -> str:
        """The file's exact content (sorted keys: the same inputs give the same bytes)."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"


def build_info(matrix: Matrix, package: WheelPackage, release: Release) -> BuildInfo:
    """The generated metadata of ``package`` for ``release``.

    Every package gets the release's version. The meta package also gets the
    runtime requirement at that version and one extra per framework, built by
    ``Framework.requirements`` from the release's pins.
    """
    dependencies: tuple[Requirement, ...] = ()
    extras: dict[str, tuple[Requirement, ...]] = {}
    if package.requires_runtime is not None:
        dependencies = (Requirement(f"{package.requires_runtime}=={release.version}"),)
    if package.meta:
        for framework in matrix.frameworks:
            extras[framework.extra] = framework.requirements(release.pins)
    return BuildInfo(
        package=str(package.name),
        release=release.name,
        version=str(release.version),
        dependencies=dependencies,
        optional_dependencies=extras,
        pins={str(name): str(version) for name, version in release.pins.items()},
    )


def metadata_problems(wheel: Path, info: BuildInfo) -> list[str]:
    """Where the wheel's name, version or requirements differ from ``info``; empty when none.

    Reads METADATA straight from the zip (nothing is extracted).
    """
    name, version, _, _ = parse_wheel_filename(wheel.name)
    problems: list[str] = []
    if name != canonicalize_name(info.package):
        problems.append(f"wheel is named {name!r}, the matrix builds {info.package!r}")
    if str(version) != info.version:
        problems.append(
            f"wheel has version {version}, release {info.release} is {info.version}: the "
            f"package must take its version from {BUILD_FILE.as_posix()}"
        )
    metadata = read_wheel_metadata(wheel)
    actual = {_normalized(r) for r in metadata.requires}
    expected = {_normalized(r) for r in info.dependencies}
    for extra, requirements in info.optional_dependencies.items():
        expected |= {_normalized(Requirement(f'{r}; extra == "{extra}"')) for r in requirements}
    missing = sorted(expected - actual)
    if missing:
        problems.append(
            "Requires-Dist lacks the generated requirements "
            + ", ".join(missing)
            + f": the package must read them from {BUILD_FILE.as_posix()}"
        )
    for extra in info.optional_dependencies:
        if canonicalize_name(extra) not in metadata.extras:
            problems.append(f"the wheel does not provide the extra {extra!r}")
    return problems


def _normalized(requirement: Requirement) -> str:
    """One spelling per requirement: canonical name, sorted extras, packaging's str()."""
    copy = Requirement(str(requirement))
    copy.name = canonicalize_name(copy.name)
    return str(copy)
