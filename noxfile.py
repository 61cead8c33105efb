"""nox sessions: the user interface of buildmatrix. Each one is thin and calls the package.

nox -s tests            run the test suite (unit, real builds, container, network)
nox -s lint             ruff, ruff format --check, mypy --strict, workflow schema and zizmor
nox -s matrix -- ...    buildmatrix plan (posargs passed through)
nox -s wheels -- ...    build, audit and publish the wheels (buildmatrix wheels, posargs passed)
nox -s audit -- ...     buildmatrix audit (default: every wheel in wheelhouse/)
nox -s images -- ...    buildmatrix images (posargs passed through)
nox -s docs             regenerate docs/support-matrix.md (`-- --check` only checks)
nox -s ci_matrix -- ... the CI job matrices (buildmatrix ci, posargs passed through)
nox -s verify -- ...    buildmatrix verify: pins in pyproject, wheels, images, docs, index
nox -s installs -- ...  buildmatrix installs: the real glibc floor of every extra, from the index
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def _install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


def _buildmatrix(session: nox.Session, command: str) -> None:
    """The package's own CLI, with the session's posargs passed through."""
    _install(session)
    session.run("python", "-m", "buildmatrix", command, *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite; posargs go to pytest (e.g. `-- -m "not container"`)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks: ruff (lint and format), mypy --strict, the structure limits, the workflows."""
    _install(session, "test")
    session.install("ruff", "mypy")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "benchmarks")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py", "benchmarks")
    session.run("mypy", "--strict", "src/buildmatrix")
    # No function over 50 lines and no class over 300 (issue 16): a gate, not just a figure.
    session.run("python", "benchmarks/structure_metrics.py")
    # The workflows: GitHub's schema, then zizmor's security audits (both offline).
    session.install("-c", ".github/constraints.txt", "check-jsonschema", "zizmor")
    workflows = sorted(str(path) for path in Path(".github/workflows").glob("*.yml"))
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run("zizmor", "--offline", ".github/workflows")


@nox.session
def matrix(session: nox.Session) -> None:
    """Show what matrix.toml expands to: `nox -s matrix -- --release v0.7.1 --format json`."""
    _buildmatrix(session, "plan")


@nox.session
def wheels(session: nox.Session) -> None:
    """Build the matrix's wheels into wheelhouse/: `nox -s wheels -- --release v0.7.1 --dry-run`."""
    _buildmatrix(session, "wheels")


@nox.session
def audit(session: nox.Session) -> None:
    """Audit wheels' glibc tags: `nox -s audit -- [PATH ...] [--policy manylinux_2_28]`."""
    _buildmatrix(session, "audit")


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/support-matrix.md from matrix.toml; `-- --check` fails on drift instead."""
    _buildmatrix(session, "docs")


@nox.session
def ci_matrix(session: nox.Session) -> None:
    """The release workflow's job matrices: `nox -s ci_matrix -- --release v0.7.1 --format json`."""
    _buildmatrix(session, "ci")


@nox.session
def images(session: nox.Session) -> None:
    """Build runtime images: `nox -s images -- vllm --dry-run` (posargs go to `buildmatrix images`)."""
    _buildmatrix(session, "images")


@nox.session
def verify(session: nox.Session) -> None:
    """Prove pins agree everywhere: `nox -s verify -- --wheel dist/*.whl --image oci:out --check-index`."""
    _buildmatrix(session, "verify")


@nox.session
def installs(session: nox.Session) -> None:
    """Effective glibc floor per extra from the live index: `nox -s installs -- --release v0.7.1 --write`."""
    _buildmatrix(session, "installs")
