"""Install a framework image's pins exactly, prove it, and record them (runs inside the image).

Called by containers/Dockerfile with every pin as a build argument. It stops at
once, before installing anything, when a pin is missing; installs every pin with
``==`` (plus the toolkit's own wheels when the wheelhouse has them) in one pip
resolve; then reads back what pip installed and fails unless each pinned
distribution is installed at exactly its pin. Last it writes
/opt/buildmatrix/pins.json, the record `buildmatrix verify` reads.

Standard library only, plus the ``packaging`` pip vendors: the image's venv
has nothing else before this runs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
from pip._vendor.packaging.version import InvalidVersion, Version

PINS_FILE = Path("/opt/buildmatrix/pins.json")


def fail(message: str) -> None:
    print(f"install_pins: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="install_pins")
    parser.add_argument("--release", required=True)
    parser.add_argument("--framework", required=True)
    parser.add_argument("--cuda", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument(
        "--pin",
        nargs=4,
        action="append",
        default=[],
        metavar=("ARG", "NAME", "VERSION", "EXTRAS"),
        help="a pinned distribution: the build arg that carried it, name, version, extras",
    )
    parser.add_argument("--toolkit", default="", help="space-separated NAME==VERSION")
    parser.add_argument("--index-url", default="")
    parser.add_argument("--no-index", default="", help="non-empty: only --find-links")
    parser.add_argument("--find-links", action="append", default=[])
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for name in ("release", "framework", "cuda", "python"):
        if not getattr(args, name):
            fail(f"--{name} is empty: a build arg is missing (buildmatrix images passes it)")
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != args.python:
        fail(f"the image's Python is {running}, the matrix pins {args.python}")
    pins: dict[str, Version] = {}
    requirements: list[str] = []
    for build_arg, name, version, extras in args.pin:
        if not version:
            fail(
                f"build arg {build_arg} is missing: the {name} pin comes from matrix.toml "
                f"(run `buildmatrix images {args.framework} --dry-run` to see it)"
            )
        try:
            pins[canonicalize_name(name)] = Version(version)
        except InvalidVersion:
            fail(f"build arg {build_arg}={version!r} is not a version")
        extra = f"[{extras}]" if extras else ""
        requirements.append(f"{name}{extra}=={version}")
    toolkit = [Requirement(text) for text in args.toolkit.split()]
    requirements += [str(requirement) for requirement in toolkit]

    # pip's cache is a build cache mount (see the Dockerfile), not part of the image.
    command = [sys.executable, "-m", "pip", "install"]
    if args.no_index:
        command.append("--no-index")
    elif args.index_url:
        command += ["--index-url", args.index_url]
    for directory in args.find_links:
        if Path(directory).is_dir() and any(Path(directory).iterdir()):
            command += ["--find-links", directory]
    print("+ " + " ".join(command + requirements), flush=True)
    result = subprocess.run(command + requirements, check=False)
    if result.returncode != 0:
        fail(f"pip could not install {' '.join(requirements)}")

    wrong = []
    for name, pinned in pins.items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name} is not installed (pinned {pinned})")
            continue
        if installed != pinned:
            wrong.append(f"{name} {installed} is installed, the pin is {pinned}")
    if wrong:
        fail("the image does not carry its pins: " + "; ".join(wrong))

    record = {
        "release": args.release,
        "framework": args.framework,
        "cuda": args.cuda,
        "python": args.python,
        "pins": {name: str(version) for name, version in pins.items()},
    }
    PINS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=PINS_FILE.parent, delete=False) as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, PINS_FILE)
    print(f"install_pins: {PINS_FILE}: {json.dumps(record)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
