"""The container tests' privileged path on a GitHub-hosted runner, run for real.

A hosted runner's user is not root but has passwordless ``sudo`` (and Ubuntu
24.04 restricts the user namespaces rootless buildah needs), so pr.yml's tests
job debootstraps the base through ``sudo`` (tests/support/container_base.py) and runs
the container tests as root through ``sudo``. Here a throwaway unprivileged user
with passwordless sudo runs those very steps, taken from pr.yml. Creating the
user needs root, as ``.ci/run`` has; the user and its sudoers entry are removed
afterwards.
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support import container_base

PR_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "pr.yml"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class SudoUser:
    name: str
    uid: int
    home: Path
    sudoers: Path

    def run(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """``bash -e -c script`` as this user, in the repository, with only ``env``."""
        return subprocess.run(
            [
                "runuser",
                "-u",
                self.name,
                "--",
                "env",
                "-i",
                *(f"{k}={v}" for k, v in env.items()),
                "bash",
                "-e",
                "-c",
                script,
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )


def _need_root() -> None:
    missing = [tool for tool in ("useradd", "userdel", "runuser", "sudo", "visudo") if not shutil.which(tool)]
    problem = "creating a test user needs root" if os.geteuid() != 0 else ""
    if missing:
        problem = f"missing {', '.join(missing)} (apt-get install sudo passwd util-linux, as .ci/run does)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.fixture
def sudo_user() -> Iterator[SudoUser]:
    """An unprivileged user with passwordless sudo, as on a hosted runner; removed after."""
    _need_root()
    name = f"bmci{secrets.token_hex(3)}"
    # Not under pytest's basetemp, which only root may enter.
    home = Path(tempfile.mkdtemp(prefix=f"buildmatrix-{name}-"))
    sudoers = Path("/etc/sudoers.d") / f"buildmatrix-test-{name}"
    subprocess.run(
        [
            "useradd",
            "--home-dir",
            str(home),
            "--no-create-home",
            "--shell",
            "/bin/bash",
            "--user-group",
            name,
        ],
        check=True,
    )
    try:
        entry = pwd.getpwnam(name)
        assert entry.pw_uid != 0
        os.chown(home, entry.pw_uid, entry.pw_gid)
        draft = sudoers.with_name(f".{sudoers.name}")
        draft.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n", encoding="utf-8")
        draft.chmod(0o440)
        subprocess.run(["visudo", "--check", "--file", str(draft)], check=True, capture_output=True)
        draft.replace(sudoers)
        yield SudoUser(name=name, uid=entry.pw_uid, home=home, sudoers=sudoers)
    finally:
        sudoers.unlink(missing_ok=True)
        sudoers.with_name(f".{sudoers.name}").unlink(missing_ok=True)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(home, ignore_errors=True)  # root: also what sudo made in it
    with pytest.raises(KeyError):
        pwd.getpwnam(name)
    with pytest.raises(KeyError):
        grp.getgrnam(name)


def _pr_step(name: str) -> str:
    job = yaml.safe_load(PR_WORKFLOW.read_text(encoding="utf-8"))["jobs"]["tests"]
    (step,) = [s for s in job["steps"] if s.get("name") == name]
    script = step["run"]
    assert isinstance(script, str)
    return script


def _runner_env(user: SudoUser, cache: Path) -> dict[str, str]:
    """What the step sees on a runner: setup-python's `python` first on PATH, the job's cache."""
    tools = user.home / "hostedtoolcache" / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    (tools / "python").symlink_to("/usr/bin/python3")  # the user cannot reach /root's pyenv
    return {
        "HOME": str(user.home),
        "PATH": f"{tools}:{SYSTEM_PATH}",
        "BUILDMATRIX_CACHE_DIR": str(cache),
        "CI": "true",
    }


@pytest.mark.container
def test_the_pr_container_path_works_as_an_unprivileged_user_with_sudo(sudo_user: SudoUser) -> None:
    cache = sudo_user.home / "cache"
    env = _runner_env(sudo_user, cache)
    whoami = sudo_user.run("id -u; sudo --non-interactive id -u", env)
    assert whoami.stdout.split() == [str(sudo_user.uid), "0"], whoami.stderr

    # pr.yml's base step, as the runner's user: debootstrap and tar through sudo.
    base = sudo_user.run(
        _pr_step("Debootstrap the container tests' base, privileged parts through sudo"), env
    )
    assert base.returncode == 0, base.stderr[-3000:]
    tarball = Path(base.stdout.strip())
    assert tarball.parent == cache / "container-base"
    assert "+ sudo --non-interactive --preserve-env=" in base.stderr
    assert " debootstrap --variant=minbase" in base.stderr
    # Handed back to the user, and nothing of root's is left in the user's cache.
    assert tarball.stat().st_uid == sudo_user.uid
    leftovers = [p for p in cache.rglob("*") if p.lstat().st_uid != sudo_user.uid]
    assert leftovers == []
    with tarfile.open(tarball) as archive:
        members = {m.name: m for m in archive.getmembers()}
    # Only root can read the rootfs's /etc/shadow: tar ran as root.
    assert members["./etc/shadow"].uid == 0
    assert "./usr/bin/python3" in members or "./usr/bin/python3.11" in members
    assert not [name for name in members if name.endswith(".deb")]

    # The container tests' step, as root through sudo: PATH and cache come along
    # (sudo's secure_path would otherwise hide setup-python's tools), and the base
    # the user made is found there, not debootstrapped again.
    step = _pr_step("Container tests, as root through sudo")
    prefix, _, command = step.partition(" nox ")
    assert command.strip() == "-s tests -- -m container"
    probe = sudo_user.run(
        f'{prefix} bash -c \'id -u; command -v python; echo "$BUILDMATRIX_CACHE_DIR"; echo "$CI"\'', env
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["0", str(Path(env["PATH"].split(":")[0]) / "python"), str(cache), "true"]
    as_root = sudo_user.run(f"{prefix} python tests/support/container_base.py", env)
    assert as_root.returncode == 0, as_root.stderr[-3000:]
    assert as_root.stdout.strip() == str(tarball)
    assert "debootstrap" not in as_root.stderr

    # buildah through sudo into a private storage, as the user.
    storage = sudo_user.home / "storage"
    imported = sudo_user.run(f"python tests/support/container_base.py --import --storage-root {storage}", env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    ref = imported.stdout.strip()
    assert ref.startswith("localhost/buildmatrix-test-base:")
    assert "+ sudo --non-interactive --preserve-env=CONTAINERS_STORAGE_CONF" in imported.stderr
    inspect = subprocess.run(
        ["buildah", "inspect", "--type", "image", ref],
        env={**os.environ, **container_base.storage_env(storage)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert inspect.returncode == 0, inspect.stderr  # in that storage, not the machine's

    # Without passwordless sudo the same step fails at once, naming sudo; it never hangs.
    sudo_user.sudoers.unlink()
    elsewhere = sudo_user.home / "other-storage"
    denied = sudo_user.run(f"python tests/support/container_base.py --import --storage-root {elsewhere}", env)
    assert denied.returncode != 0
    assert "buildah failed" in denied.stderr
    assert "sudo: a password is required" in denied.stderr


def test_privileged_commands_go_through_sudo_only_when_not_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert container_base.privileged("debootstrap", "--variant=minbase") == [
        "debootstrap",
        "--variant=minbase",
    ]
    monkeypatch.setattr(os, "geteuid", lambda: 1001)
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert container_base.privileged("buildah", "from", "scratch") == [
        "sudo",
        "--non-interactive",  # a sudo that wants a password fails, never hangs a CI job
        "--preserve-env=CONTAINERS_STORAGE_CONF,STORAGE_DRIVER,BUILDAH_ISOLATION",
        "buildah",
        "from",
        "scratch",
    ]
    assert set(container_base.SUDO_KEEP_ENV) == set(container_base.storage_env(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError, match=r"`debootstrap` needs root: run as root, or install sudo"):
        container_base.privileged("debootstrap")
