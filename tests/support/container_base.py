"""A small local base image for the container tests, made without any registry.

No container registry is reachable where the tests run (this sandbox, CI), so
the images under test are built ``FROM`` a Debian minbase root filesystem with
Python, made by ``debootstrap`` from the Debian mirror apt already uses and
imported into buildah's storage.

debootstrap takes minutes, so the root filesystem is kept as a tarball in a
cache directory outside git (``$BUILDMATRIX_CACHE_DIR``, else
``$XDG_CACHE_HOME/buildmatrix``, else ``~/.cache/buildmatrix``), keyed by the
suite, variant, package list and architecture: a change to any of them makes a
new one. Importing the tarball takes seconds.

buildah runs with the storage of ``storage_env(root)``: a private storage root
(so tests never touch the machine's images) with the ``vfs`` driver and
``chroot`` isolation, the only ones that work in an unprivileged sandbox.

debootstrap and buildah need root. As root (``.ci/run``) they run directly; as
any other user (a GitHub-hosted runner, whose user has passwordless ``sudo`` and
whose Ubuntu 24.04 restricts the user namespaces rootless buildah needs) the
privileged commands run through ``sudo --non-interactive``, explicitly
(``privileged``), and what they make is handed back to the user: the tarball is
written by the user from ``sudo tar``'s output, the root-owned scratch tree is
removed with ``sudo rm``. pr.yml takes this path; tests/integration/ci/test_sudo.py proves it
as an unprivileged user with passwordless sudo.

``.ci/run`` and pr.yml can warm the cache before the tests (``debootstrap`` and
``buildah`` installed; root or passwordless sudo)::

    python tests/support/container_base.py            # prints the tarball's path
    python tests/support/container_base.py --import --storage-root DIR   # prints the image ref
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

__all__ = [
    "PACKAGES",
    "SUITE",
    "VARIANT",
    "cache_dir",
    "cache_key",
    "debian_mirror",
    "import_base_image",
    "privileged",
    "rootfs_tarball",
    "storage_env",
]

SUITE = "bookworm"
VARIANT = "minbase"
# What the runtime Dockerfile needs from a base: an interpreter that can make a venv.
PACKAGES = ("python3", "python3-pip", "python3-venv")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_NAME = "localhost/buildmatrix-test-base"
# What buildah needs from the caller's environment when it runs through sudo,
# which otherwise resets the environment (storage_env's private storage).
SUDO_KEEP_ENV = ("CONTAINERS_STORAGE_CONF", "STORAGE_DRIVER", "BUILDAH_ISOLATION")


def privileged(*args: str) -> list[str]:
    """``args`` as root: unchanged when already root, else through passwordless sudo.

    ``--non-interactive``: a sudo that wants a password fails at once (with a clear
    message from ``_run``) instead of hanging a CI job.
    """
    if os.geteuid() == 0:
        return list(args)
    if shutil.which("sudo") is None:
        msg = f"`{args[0]}` needs root: run as root, or install sudo (apt-get install sudo) for this user"
        raise RuntimeError(msg)
    return ["sudo", "--non-interactive", f"--preserve-env={','.join(SUDO_KEEP_ENV)}", *args]


def cache_dir() -> Path:
    explicit = os.environ.get("BUILDMATRIX_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "buildmatrix"


def debian_mirror() -> str:
    """The Debian archive apt is configured with (``$BUILDMATRIX_DEBIAN_MIRROR`` wins).

    Reads both the one-line format (``deb URL suite comp``) and deb822
    ``.sources`` files (``URIs: URL``); the first URL serving ``.../debian``
    (not ``debian-security``) is the archive debootstrap needs.
    """
    explicit = os.environ.get("BUILDMATRIX_DEBIAN_MIRROR")
    if explicit:
        return explicit
    files = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        files += sorted(sources_d.iterdir())
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in _urls_in_sources(text):
            if url.rstrip("/").endswith("/debian"):
                return url.rstrip("/")
    return DEFAULT_MIRROR


def _urls_in_sources(text: str) -> list[str]:
    urls: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.startswith("URIs:"):
            urls += line.removeprefix("URIs:").split()
        elif line.startswith("deb "):
            # deb [options] URL suite components...; options are in brackets.
            words = re.sub(r"\[[^\]]*\]", " ", line).split()
            if len(words) >= 2:
                urls.append(words[1])
    return urls


def _host_arch() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()


def cache_key(packages: tuple[str, ...] = PACKAGES) -> str:
    identity = {
        "suite": SUITE,
        "variant": VARIANT,
        "packages": sorted(packages),
        "arch": _host_arch(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def rootfs_tarball(packages: tuple[str, ...] = PACKAGES, *, cache: Path | None = None) -> Path:
    """The cached root filesystem tarball, made with debootstrap when missing."""
    for tool in ("debootstrap", "tar"):
        if shutil.which(tool) is None:
            msg = f"`{tool}` is missing: apt-get install debootstrap buildah"
            raise RuntimeError(msg)
    directory = (cache or cache_dir()) / "container-base"
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"debian-{SUITE}-{VARIANT}-{cache_key(packages)}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=directory, prefix=".debootstrap-") as work:
        rootfs = Path(work) / "rootfs"
        try:
            _run(
                *privileged(
                    "debootstrap",
                    f"--variant={VARIANT}",
                    f"--include={','.join(packages)}",
                    SUITE,
                    str(rootfs),
                    debian_mirror(),
                )
            )
            partial = Path(work) / "rootfs.tar"
            # The tree is root's (some files only root may read), so tar runs as root
            # and the tarball is written from its output: it belongs to the caller.
            # apt's downloaded .debs and lists are dead weight in an image.
            with partial.open("wb") as out:
                _run(
                    *privileged(
                        "tar",
                        "--numeric-owner",
                        "--exclude=./var/cache/apt/archives/*.deb",
                        "--exclude=./var/lib/apt/lists/*_*",
                        "-C",
                        str(rootfs),
                        "-cf",
                        "-",
                        ".",
                    ),
                    stdout=out,
                )
            partial.replace(tarball)  # atomic: a killed run leaves no half tarball
        finally:
            if os.geteuid() != 0 and rootfs.exists():
                # Root's files in the caller's scratch folder: only root can remove them.
                subprocess.run(privileged("rm", "-rf", "--one-file-system", str(rootfs)), check=False)
    return tarball


def storage_env(root: Path) -> dict[str, str]:
    """Environment that points buildah at a private vfs storage under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n'
    )
    return {
        "CONTAINERS_STORAGE_CONF": str(conf),
        "STORAGE_DRIVER": "vfs",
        "BUILDAH_ISOLATION": "chroot",
    }


def import_base_image(tarball: Path, env: Mapping[str, str]) -> str:
    """Import the root filesystem as ``localhost/buildmatrix-test-base:<key>``; its ref."""
    ref = f"{IMAGE_NAME}:{tarball.stem.rsplit('-', 1)[-1]}"
    full_env = {**os.environ, **env}
    present = subprocess.run(
        privileged("buildah", "inspect", "--type", "image", ref),
        env=full_env,
        capture_output=True,
        check=False,
    )
    if present.returncode == 0:
        return ref
    container = _run(*privileged("buildah", "from", "scratch"), env=full_env).strip()
    try:
        # `buildah add` unpacks a local tar archive into the destination.
        _run(*privileged("buildah", "add", container, str(tarball), "/"), env=full_env)
        _run(
            *privileged(
                "buildah",
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd",
                "/bin/bash",
                container,
            ),
            env=full_env,
        )
        _run(*privileged("buildah", "commit", "--rm", container, ref), env=full_env)
    except BaseException:
        subprocess.run(privileged("buildah", "rm", container), env=full_env, check=False)
        raise
    return ref


def _run(*args: str, env: Mapping[str, str] | None = None, stdout: IO[bytes] | None = None) -> str:
    """Run ``args``; its output (unless sent to ``stdout``); a RuntimeError with its stderr."""
    print("+ " + " ".join(args), file=sys.stderr, flush=True)
    result = subprocess.run(
        list(args),
        env=None if env is None else dict(env),
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        check=False,
    )
    stderr = result.stderr.decode(errors="replace")
    if result.returncode != 0:
        what = args[3] if args[0] == "sudo" and len(args) > 3 else args[0]
        msg = f"{what} failed ({result.returncode}): {' '.join(args)}\n{stderr[-3000:]}"
        raise RuntimeError(msg)
    return "" if stdout is not None else result.stdout.decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--import", dest="do_import", action="store_true", help="also import it into buildah")
    parser.add_argument("--storage-root", type=Path, help="private buildah storage for --import")
    args = parser.parse_args(argv)
    tarball = rootfs_tarball()
    if not args.do_import:
        print(tarball)
        return 0
    env = storage_env(args.storage_root) if args.storage_root else {}
    print(import_base_image(tarball, env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
