"""Structure figures of the package (issue 16): long functions, long classes, the largest module.

A function's length is ``end_lineno - lineno + 1`` from its ``def`` line
(decorators not counted), methods and nested functions included, each counted
whole (a nested function also counts inside its parent). A class is measured
the same way from its ``class`` line.

    python benchmarks/structure_metrics.py                 # src/buildmatrix of this checkout
    python benchmarks/structure_metrics.py --root OTHER/src/buildmatrix --functions 50 --classes 300

Exits 1 when a function or class is over its limit, so the figures can gate.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "buildmatrix"


def _length(node: ast.AST) -> int:
    end = getattr(node, "end_lineno", None)
    start = getattr(node, "lineno", 0)
    return 0 if end is None else end - start + 1


def _definitions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """(qualified name, node) of every function and class, nested ones included."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                yield name, child
                stack.append((f"{name}.", child))
            else:
                stack.append((prefix, child))


def measure(root: Path, function_limit: int, class_limit: int) -> int:
    long_functions: list[tuple[int, str]] = []
    long_classes: list[tuple[int, str]] = []
    modules: list[tuple[int, str]] = []
    functions = 0
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        module = path.relative_to(root.parent).with_suffix("").as_posix().replace("/", ".")
        modules.append((len(source.splitlines()), module))
        for name, node in _definitions(ast.parse(source, str(path))):
            length = _length(node)
            if isinstance(node, ast.ClassDef):
                if length > class_limit:
                    long_classes.append((length, f"{module}.{name}"))
            else:
                functions += 1
                if length > function_limit:
                    long_functions.append((length, f"{module}.{name}"))
    print(f"{root}: {len(modules)} modules, {functions} functions")
    if not functions:
        print("nothing measured: no function in any module (a wrong --root?)")
        return 1
    print(f"functions over {function_limit} lines: {len(long_functions)}")
    for length, name in sorted(long_functions, reverse=True):
        print(f"  {length:5d}  {name}")
    print(f"classes over {class_limit} lines: {len(long_classes)}")
    for length, name in sorted(long_classes, reverse=True):
        print(f"  {length:5d}  {name}")
    lines, largest = max(modules)
    print(f"largest module: {largest} ({lines} lines)")
    return 1 if long_functions or long_classes else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=PACKAGE, help="the package folder to measure")
    parser.add_argument("--functions", type=int, default=50, help="longest function allowed (lines)")
    parser.add_argument("--classes", type=int, default=300, help="longest class allowed (lines)")
    args = parser.parse_args()
    return measure(args.root, args.functions, args.classes)


if __name__ == "__main__":
    raise SystemExit(main())
