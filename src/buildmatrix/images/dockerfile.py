"""Just enough Dockerfile reading to know which build args a target stage requires.

The plan compares them with the args it computes from the matrix, so a pin the
Dockerfile needs but the matrix lacks (or the reverse) is an error before any
build starts, naming both files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AUTOMATIC_ARGS", "stage_args"]

# Set by BuildKit and buildah for every build; a Dockerfile declares them to use them.
AUTOMATIC_ARGS = frozenset(
    {
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
    }
)


@dataclass
class _Stage:
    base: str
    args: list[str] = field(default_factory=list)  # declared without a default


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, rest) per instruction, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _required_arg(declaration: str) -> str | None:
    name, eq, _default = declaration.partition("=")
    return None if eq or name in AUTOMATIC_ARGS else name


def stage_args(text: str, target: str) -> list[str] | None:
    """Args without a default that building ``target`` needs (its stage, the stages it is
    ``FROM``, and global args), in order; ``None`` when there is no such stage."""
    global_args: list[str] = []
    stages: dict[str, _Stage] = {}
    current: _Stage | None = None
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            if not words:
                msg = f"`FROM {rest}` names no image"
                raise ValueError(msg)
            current = _Stage(base=words[0])
            if len(words) >= 3 and words[1].upper() == "AS":
                stages[words[2]] = current
        elif keyword == "ARG":
            for declaration in rest.split():
                name = _required_arg(declaration)
                if name is None:
                    continue
                (global_args if current is None else current.args).append(name)
    if target not in stages:
        return None
    required: list[str] = []
    chain: list[_Stage] = []
    stage: _Stage | None = stages[target]
    while stage is not None and stage not in chain:
        chain.append(stage)
        stage = stages.get(stage.base)
    for stage in reversed(chain):
        for name in stage.args:
            if name not in required:
                required.append(name)
    # A global arg is needed when a stage's FROM uses it.
    used_globals = [
        name for name in global_args if any(f"${{{name}}}" in s.base or f"${name}" in s.base for s in chain)
    ]
    return used_globals + [name for name in required if name not in used_globals]
