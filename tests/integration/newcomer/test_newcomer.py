"""A newcomer's first hour: the README's set-up on a fresh Debian 12, verbatim.

A Debian 12 (bookworm) root filesystem with nothing but its system Python is
debootstrapped (cached like the other container tests' base, see
tests/support/container_base.py), imported into a private buildah storage, and given a
copy of this repository's files. Inside it the README's prerequisite line and
its main set-up command run exactly as the README prints them: the commands are
read from README.md, so a README that stops working fails this test.

The only things added from outside are what any machine on this network needs:
``sudo`` (a fresh install has it; debootstrap's minbase does not) and this
host's CA bundle for HTTPS to PyPI (``PIP_CERT``/``SSL_CERT_FILE``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.container_base import import_base_image, rootfs_tarball, storage_env

pytestmark = pytest.mark.container

# A fresh Debian 12 has its system Python and nothing else of ours.
FRESH_PACKAGES = ("python3",)
SETUP_HEADING = "## Set up on a fresh machine"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def readme_setup_commands() -> list[str]:
    """The indented command lines of the README's set-up section, in order."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SETUP_HEADING) :]
    section = section[: section.index("\n## ", len(SETUP_HEADING))]
    return [line.strip() for line in section.splitlines() if re.match(r"^ {4}\S", line)]


def test_readme_names_a_pep668_safe_setup_and_the_buildmatrix_command() -> None:
    commands = readme_setup_commands()
    prerequisites, wheels, tests = commands[0], commands[1], commands[2]
    assert prerequisites.startswith("sudo apt-get install")
    assert "nox -s wheels" in wheels
    assert "nox -s tests" in tests
    for command in (wheels, tests):  # PEP 668: never a bare `pip install` into the system Python
        assert "python3 -m pip install" not in command
    assert any("buildmatrix --help" in command for command in commands)
    # .ci/run runs the README's test command, verbatim.
    assert tests in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")


def _repository_copy(destination: Path) -> None:
    """The files a fresh clone has (tracked and new, not ignored): no .venv, .nox or wheelhouse."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if not source.is_file():
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _buildah(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["buildah", *args], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"buildah {' '.join(args[:3])} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def test_readme_setup_builds_the_wheels_on_a_fresh_debian_12(tmp_path: Path) -> None:
    prerequisites, main_command = readme_setup_commands()[:2]
    env = storage_env(tmp_path / "storage")
    image = import_base_image(rootfs_tarball(FRESH_PACKAGES), env)
    container = _buildah(env, "from", "--quiet", image).stdout.strip()
    try:
        # The image has no venv module, no compiler, no headers: what the README says to install.
        probe = _buildah(env, "run", container, "--", "python3", "-c", "import ensurepip", check=False)
        assert probe.returncode != 0, "the base already has python3-venv: not a fresh system"
        checkout = tmp_path / "buildmatrix"
        _repository_copy(checkout)
        _buildah(env, "copy", container, str(checkout), "/root/buildmatrix")
        ca_env: list[str] = []
        if HOST_CA.is_file():
            _buildah(env, "copy", container, str(HOST_CA), "/usr/local/share/host-ca.crt")
            ca_env = ["--env", "PIP_CERT=/usr/local/share/host-ca.crt"]
            ca_env += ["--env", "SSL_CERT_FILE=/usr/local/share/host-ca.crt"]
        script = "\n".join(
            [
                "set -eux",
                "apt-get update -qq",
                "apt-get install -y -qq sudo >/dev/null",
                "cd /root/buildmatrix",
                prerequisites,
                main_command,
                "ls wheelhouse",
            ]
        )
        result = _buildah(
            env,
            "run",
            *ca_env,
            "--env",
            "DEBIAN_FRONTEND=noninteractive",
            container,
            "--",
            "bash",
            "-c",
            script,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        listing = result.stdout.split()
        pure = r"ai_dynamo-[^-]+-py3-none-any\.whl"
        native = r"ai_dynamo_runtime-[^-]+-cp310-abi3-manylinux_2_28_\w+\.whl"
        for pattern in (pure, native):
            assert any(re.fullmatch(pattern, name) for name in listing), output[-3000:]
        assert "manifest.json" in listing
        assert "Traceback" not in output
    finally:
        _buildah(env, "rm", container, check=False)
        shutil.rmtree(tmp_path / "storage", ignore_errors=True)
