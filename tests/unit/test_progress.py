"""Screen output only in ``buildmatrix.cli``: the library reports through ``buildmatrix.progress``.

A scan of the package's source with ``ast`` (fast, no import): outside ``cli/``
no module may print to the screen (``print`` without ``file=``, or to
``sys.stdout``/``sys.stderr``), touch ``sys.stdout``/``sys.stderr``, import rich,
or import the command line. Writing a log file (``print(..., file=log)``) is
not screen output. The few entry points that must print before the command
line exists are allowed by name, each with its reason.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildmatrix._call import call, echo_to, short_command
from tests.conftest import REPO_ROOT
from tests.support.recorder import Recorder

PACKAGE = REPO_ROOT / "src" / "buildmatrix"

# (module relative to the package folder, enclosing function) -> why it may write to the screen.
ALLOWED: dict[tuple[str, str], str] = {
    ("_entry.py", "main"): (
        "the console script's guard around importing buildmatrix.cli: a Ctrl-C during that "
        "import is reported before any of cli/ exists, so it cannot go through cli/"
    ),
    ("audit/runpath.py", "main"): (
        "a script entry point (`python -m buildmatrix.audit.runpath WHEEL`) the local backend "
        "runs inside a build; what it prints goes to that build's log"
    ),
}

_SCREEN_STREAMS = {"stdout", "stderr", "__stdout__", "__stderr__"}
_COMMAND_LINE = {"buildmatrix.cli", "buildmatrix.ui"}  # ui.py lived at the package top until #16


@dataclass(frozen=True, slots=True)
class Finding:
    module: str  # relative to the package folder, e.g. "wheels/runner.py"
    function: str  # the enclosing function ("" at module level)
    line: int
    kind: str  # "print", "stream", "rich", "cli"

    def __str__(self) -> str:
        return f"{self.module}:{self.line} ({self.function or 'module'}): {self.kind}"


def _imported_modules(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The absolute names an import statement imports (``from a import b`` gives ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        package = ["buildmatrix", *module.removesuffix(".py").split("/")][:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _is_screen_stream(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr in _SCREEN_STREAMS
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


class _Scanner(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.function = ""
        self.findings: list[Finding] = []

    def _add(self, node: ast.AST, kind: str) -> None:
        self.findings.append(Finding(self.module, self.function, getattr(node, "lineno", 0), kind))

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name if not self.function else self.function
        self.generic_visit(node)
        self.function = outer

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "print":
            target = next((k.value for k in node.keywords if k.arg == "file"), None)
            if target is None:
                self._add(node, "print")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_screen_stream(node):
            self._add(node, "stream")
        self.generic_visit(node)

    def _visit_import(self, node: ast.Import | ast.ImportFrom) -> None:
        names = _imported_modules(node, self.module)
        from_sys = isinstance(node, ast.ImportFrom) and node.module == "sys" and not node.level
        if from_sys and any(alias.name in _SCREEN_STREAMS for alias in node.names):
            self._add(node, "stream")
        if any(name == "rich" or name.startswith("rich.") for name in names):
            self._add(node, "rich")
        if any(name in _COMMAND_LINE or name.startswith("buildmatrix.cli.") for name in names):
            self._add(node, "cli")

    visit_Import = _visit_import
    visit_ImportFrom = _visit_import


def scan_source(text: str, module: str) -> list[Finding]:
    scanner = _Scanner(module)
    scanner.visit(ast.parse(text, filename=module))
    return scanner.findings


def scan_package(package: Path = PACKAGE) -> list[Finding]:
    """Every finding in the package's modules outside ``cli/`` (allowed ones included)."""
    findings = []
    for path in sorted(package.rglob("*.py")):
        module = path.relative_to(package).as_posix()
        if module.startswith("cli/"):
            continue
        findings += scan_source(path.read_text(encoding="utf-8"), module)
    return findings


def test_the_library_outside_cli_writes_nothing_to_the_screen() -> None:
    findings = scan_package()
    unexplained = [str(f) for f in findings if (f.module, f.function) not in ALLOWED]
    # Screen output belongs in buildmatrix/cli; the library reports through buildmatrix.progress.
    assert unexplained == []


def test_every_allowed_exception_is_still_needed() -> None:
    used = {(f.module, f.function) for f in scan_package()}
    assert set(ALLOWED) <= used, f"stale allow-list entries: {sorted(set(ALLOWED) - used)}"
    assert len(list(PACKAGE.rglob("*.py"))) > 40  # the scan saw the real package


@pytest.mark.parametrize(
    ("source", "kinds"),
    [
        ("print('hello')", ["print"]),
        ("import sys\nprint('x', file=sys.stderr)", ["stream"]),
        ("import sys\nsys.stdout.write('x')", ["stream"]),
        ("import sys\nsys.__stderr__.flush()", ["stream"]),
        ("from sys import stderr", ["stream"]),
        ("import rich", ["rich"]),
        ("def f():\n    from rich.console import Console", ["rich"]),
        ("from buildmatrix import ui", ["cli"]),
        ("from buildmatrix.cli import ui", ["cli"]),
        ("import buildmatrix.cli.wheels", ["cli"]),
        ("from ..cli import options", ["cli"]),
        ("from .. import ui", ["cli"]),
        # A log file is not the screen; a name merely containing "print" is no print.
        ("def f(log):\n    print('+ cmd', file=log, flush=True)", []),
        ("blueprint('x')\nsys_stdout = 1\nfrom buildmatrix import progress", []),
        ("import richer\nfrom buildmatrix.client import x", []),
    ],
)
def test_the_scan_finds_screen_output(source: str, kinds: list[str]) -> None:
    assert [f.kind for f in scan_source(source, "wheels/runner.py")] == kinds


def test_findings_name_their_function() -> None:
    source = "def outer():\n    def inner():\n        print('x')\n"
    assert [(f.function, f.line) for f in scan_source(source, "_entry.py")] == [("outer", 3)]


# -- the reporter: the library's only way to the screen -------------------------------------------


def test_commands_are_echoed_only_to_the_installed_reporter(capfd: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-c", "pass"]
    call(*command)
    assert capfd.readouterr() == ("", "")  # the library alone shows nothing
    recorder = Recorder()
    with echo_to(recorder):
        call(*command)
        call(*command, echo=False)
    call(*command)  # the previous destination (none) is back
    assert recorder.events == [("command", short_command(command))]
    assert capfd.readouterr() == ("", "")
