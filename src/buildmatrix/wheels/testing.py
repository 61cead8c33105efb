"""The package's own tests against each built wheel, in a clean venv (local backend).

cibuildwheel installs each wheel it builds into a fresh environment with the
package's ``test-requires`` and runs its ``test-command`` from an empty folder,
so the tests import the installed wheel and never the source tree. The local
backend does the same with the same settings, read from the package's
``[tool.cibuildwheel]`` table (one place for them, whichever backend builds).

The command runs without a shell: it is split like a shell would split it and
``{project}`` / ``{package}`` become the staged source folder; shell operators
(``&&``, ``|``, redirects, ``$VAR``) are refused with a clear message.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from buildmatrix._paths import read_regular_text
from buildmatrix.errors import UsageError
from buildmatrix.wheels.jobs import WHEEL_PLACEHOLDER, Command

__all__ = ["TestSpec", "read_test_spec", "test_commands"]

_SHELL_OPERATORS = ("&&", "||", "|", ";", ">", "<", "$", "`", "&")
_PLACEHOLDERS = ("{project}", "{package}")


@dataclass(frozen=True, slots=True)
class TestSpec:
    command: tuple[str, ...]  # argv, with {project}/{package} placeholders
    requires: tuple[str, ...]
    origin: str  # "examples/kvbm/pyproject.toml [tool.cibuildwheel]"

    __test__ = False  # not a pytest test class


def read_test_spec(source: Path) -> TestSpec | None:
    """The package's test settings, or None when it declares no test-command."""
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return None
    origin = f"{pyproject} [tool.cibuildwheel]"
    try:
        data = tomllib.loads(read_regular_text(pyproject, "pyproject.toml"))
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as error:
        msg = f"{pyproject}: invalid TOML: {error}"
        raise UsageError(msg) from None
    tool = data.get("tool", {})
    table = tool.get("cibuildwheel", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        return None
    raw_command = table.get("test-command")
    if raw_command is None:
        return None
    if isinstance(raw_command, list) and len(raw_command) == 1:
        raw_command = raw_command[0]
    if not isinstance(raw_command, str) or not raw_command.strip():
        msg = f"{origin}: test-command must be one non-empty command string"
        raise UsageError(msg)
    try:
        argv = tuple(shlex.split(raw_command))
    except ValueError as error:
        msg = f"{origin}: test-command {raw_command!r}: {error}"
        raise UsageError(msg) from None
    operators = [word for word in argv if any(op in word for op in _SHELL_OPERATORS)]
    if operators:
        msg = (
            f"{origin}: test-command {raw_command!r} uses shell syntax ({operators[0]!r}); the "
            "local backend runs it without a shell: one command, e.g. `pytest {package}/tests`"
        )
        raise UsageError(msg)
    requires = _requirements(table.get("test-requires", []), origin)
    return TestSpec(command=argv, requires=requires, origin=origin)


def _requirements(raw: object, origin: str) -> tuple[str, ...]:
    items = raw.split() if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        msg = f"{origin}: test-requires must be a list of requirements"
        raise UsageError(msg)
    for item in items:
        try:
            Requirement(item)
        except InvalidRequirement as error:
            msg = f"{origin}: test-requires: {item!r} is not a requirement: {error}"
            raise UsageError(msg) from None
    return tuple(items)


def test_commands(
    spec: TestSpec,
    *,
    interpreter: Path,
    uv: str | None,
    work: Path,
    wheel_dir: Path,
    project: Path,
) -> list[Command]:
    """Make a clean venv, install the wheel and test-requires, run the test command in it."""
    venv = work / "test-venv"
    python = venv / "bin" / "python"
    commands: list[Command] = []
    if uv is not None:
        commands.append(Command(argv=(uv, "venv", "--quiet", "--python", str(interpreter), str(venv))))
        install = (uv, "pip", "install", "--quiet", "--python", str(python))
    else:
        commands.append(Command(argv=(str(interpreter), "-m", "venv", str(venv))))
        install = (str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
    commands.append(Command(argv=(*install, WHEEL_PLACEHOLDER, *spec.requires), wheel_from=wheel_dir))
    argv = tuple(_fill(word, project) for word in spec.command)
    # From inside the venv's folder, not the source: the tests import the installed wheel.
    commands.append(Command(argv=argv, cwd=venv, path_prepend=(str(venv / "bin"),)))
    return commands


def _fill(word: str, project: Path) -> str:
    for placeholder in _PLACEHOLDERS:
        word = word.replace(placeholder, str(project))
    return word
