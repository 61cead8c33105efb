"""Just enough Dockerfile reading to know which build args a target stage declares.

The plan compares them with the args it computes from the matrix, so an arg the
stage requires but the plan does not pass (or the reverse: a pin the stage
would not receive) is an error before any build starts, naming the file.
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
    args: dict[str, bool] = field(default_factory=dict)  # name -> required (no default)


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


def stage_args(text: str, target: str) -> dict[str, bool] | None:
    """The args building ``target`` declares (its stage, the stages it is ``FROM``, and the
    global args a ``FROM`` uses), in order, each mapped to whether it is required (no default
    and not set by the builder); ``None`` when there is no such stage."""
    global_args: dict[str, bool] = {}
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
                name, eq, _default = declaration.partition("=")
                required = not eq and name not in AUTOMATIC_ARGS
                (global_args if current is None else current.args)[name] = required
    if target not in stages:
        return None
    chain: list[_Stage] = []
    stage: _Stage | None = stages[target]
    while stage is not None and stage not in chain:
        chain.append(stage)
        stage = stages.get(stage.base)
    declared = {
        name: required
        for name, required in global_args.items()
        if any(f"${{{name}}}" in s.base or f"${name}" in s.base for s in chain)
    }
    for stage in reversed(chain):
        for name, required in stage.args.items():
            declared[name] = declared.get(name, False) or required
    return declared
