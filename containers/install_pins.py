"""Install a framework image's pins exactly, prove it, and record them (runs inside the image).

Called by containers/Dockerfile with the pins in one build argument, PINS: one
``name[extras]==version`` per pin, separated by spaces. It stops at once, before
installing anything, when PINS is empty or an entry is not exactly that (no
version, not a version, a second pin of the same name); installs every pin with
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
from typing import NoReturn

from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
from pip._vendor.packaging.utils import canonicalize_name
from pip._vendor.packaging.version import InvalidVersion, Version

PINS_FILE = Path("/opt/buildmatrix/pins.json")


def fail(message: str) -> NoReturn:
    print(f"install_pins: error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="install_pins")
    parser.add_argument("--release", required=True)
    parser.add_argument("--framework", required=True)
    parser.add_argument("--cuda", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument(
        "--pins", default="", help="the PINS build arg: space-separated NAME[EXTRAS]==VERSION"
    )
    parser.add_argument("--toolkit", default="", help="space-separated NAME==VERSION")
    parser.add_argument("--index-url", default="")
    parser.add_argument("--no-index", default="", help="non-empty: only --find-links")
    parser.add_argument("--find-links", action="append", default=[])
    return parser.parse_args(argv)


def parse_pins(text: str, framework: str) -> tuple[dict[str, Version], list[str]]:
    """The PINS build arg: each entry exactly ``name[extras]==version``, one per name."""
    hint = f"the pins come from matrix.toml (run `buildmatrix images {framework} --dry-run` to see them)"
    if not text.split():
        fail(f"build arg PINS is missing or empty: {hint}")
    pins: dict[str, Version] = {}
    requirements: list[str] = []
    for entry in text.split():
        try:
            requirement = Requirement(entry)
        except InvalidRequirement as error:
            fail(f"build arg PINS: pin {entry!r} is not NAME[EXTRAS]==VERSION ({error}): {hint}")
        specifiers = list(requirement.specifier)
        if not specifiers and not requirement.url:
            fail(f"build arg PINS: pin {entry!r} has no ==VERSION: {hint}")
        if requirement.url or requirement.marker:
            fail(f"build arg PINS: pin {entry!r} is not exactly NAME[EXTRAS]==VERSION")
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            fail(f"build arg PINS: pin {entry!r} is not exactly ==VERSION")
        try:
            version = Version(specifiers[0].version)
        except InvalidVersion:
            fail(f"build arg PINS: pin {entry!r}: {specifiers[0].version!r} is not a version")
        name = canonicalize_name(requirement.name)
        if name in pins:
            fail(f"build arg PINS: pin {entry!r}: {name} is pinned twice")
        pins[name] = version
        requirements.append(str(requirement))
    return pins, requirements


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    carriers = {"release": "RELEASE", "framework": "FRAMEWORK", "cuda": "BUILDMATRIX_CUDA", "python": "PYTHON_VERSION"}
    for name, build_arg in carriers.items():
        if not getattr(args, name):
            fail(f"build arg {build_arg} is missing (--{name} is empty): buildmatrix images passes it")
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != args.python:
        fail(f"the image's Python is {running}, the matrix pins {args.python}")
    pins, requirements = parse_pins(args.pins, args.framework)
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
