"""A seeded mutator over the real matrix.toml against the commands that read it.

Each case applies one to three hostile edits (a value swapped for a shell
string, a huge integer, deep nesting, a truncated file, a stray bracket, a
deleted or duplicated line, ...) and runs ``plan``, ``docs --check``,
``images --dry-run`` and ``wheels --dry-run`` in-process. Every run must end
with exit 0, 1 or 2 within the time bound, and never with an exception (a
traceback). ``BUILDMATRIX_FUZZ_CASES`` / ``BUILDMATRIX_FUZZ_SEED`` widen or
move the search locally; CI runs the default few hundred cases.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from tests.conftest import MATRIX_PATH, REPO_ROOT, Result

CASES = int(os.environ.get("BUILDMATRIX_FUZZ_CASES", "300"))
SEED = int(os.environ.get("BUILDMATRIX_FUZZ_SEED", "15"))
SECONDS_PER_RUN = 20  # a hang (a FIFO read, a runaway loop) fails here, never stalls CI

HOSTILE_VALUES = [
    '""',
    '"../../../etc/passwd"',
    '"/etc/passwd"',
    '"a; rm -rf / #"',
    '"$(touch /tmp/pwned)"',
    '"`id`"',
    '"x\\ny"',
    '"latest"',
    '"0.0.0.0.0.0"',
    '"not a version"',
    '"🚀"',
    '"\\u0000"',
    '"' + "x" * 5000 + '"',
    "9" * 30,
    "9" * 5000,
    "-1",
    "0",
    "inf",
    "nan",
    "true",
    "1979-05-27T07:32:00Z",
    "[]",
    "{}",
    "[[]]",
    '["a", 1]',
    "[" * 60 + "]" * 60,
    "{a = " * 40 + "1" + "}" * 40,
    "{",
    "[",
    '"unterminated',
]
STRAY = ["{", "}", "[", "]", "[[", '"', "'", "=", "\n", "\\", "#", "\x00", "\t", "]]\n[[x", "\n[x]\n"]
KEY_LINE = re.compile(r"^(\s*[A-Za-z0-9_.\"-]+\s*=\s*)(.+)$")


def mutate(text: str, rng: random.Random) -> str:
    """One to three hostile edits of the matrix text."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        operation = rng.randrange(8)
        index = rng.randrange(len(lines))
        if operation <= 2:  # the most telling edit: a value replaced, the structure kept
            candidates = [i for i, line in enumerate(lines) if KEY_LINE.match(line)]
            index = rng.choice(candidates) if candidates else index
            match = KEY_LINE.match(lines[index])
            if match is not None:
                lines[index] = match.group(1) + rng.choice(HOSTILE_VALUES)
        elif operation == 3:
            del lines[index]
        elif operation == 4:
            lines.insert(index, lines[rng.randrange(len(lines))])
        elif operation == 5:
            cut = rng.randrange(len(text))
            lines = text[:cut].split("\n")
        elif operation == 6:
            position = rng.randrange(len(text))
            lines = (text[:position] + rng.choice(STRAY) + text[position:]).split("\n")
        else:
            other = rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        text = "\n".join(lines)
    return text


class _Hang(Exception):
    pass


@contextmanager
def time_bound(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shaped like the repository (examples, containers, docs) for the mutated matrix."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("examples", "containers", "docs"):
        (root / name).symlink_to(REPO_ROOT / name)
    return root


COMMANDS = [
    ("plan",),
    ("docs", "--check"),
    ("images", "vllm", "sglang", "--dry-run"),
    ("wheels", "--dry-run", "--backend", "local"),
]


def test_mutated_matrices_exit_0_1_or_2_without_traceback(
    cli: Callable[..., Result], workspace: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    original = MATRIX_PATH.read_text(encoding="utf-8")
    matrix = workspace / "matrix.toml"
    codes: dict[int, int] = {}
    slowest = 0.0
    for case in range(CASES):
        text = mutate(original, rng)
        matrix.write_text(text, encoding="utf-8")
        for command in COMMANDS:
            args = (*command, "--matrix", matrix)
            if command[0] == "wheels":
                args = (*args, "--out", tmp_path / "wheelhouse")
            started = time.monotonic()
            try:
                with time_bound(SECONDS_PER_RUN):
                    result = cli(*args)
            except _Hang:
                pytest.fail(f"case {case} (seed {SEED}): {' '.join(command)} ran over {SECONDS_PER_RUN}s")
            except Exception as error:
                kept = tmp_path / f"case-{case}.toml"
                kept.write_text(text, encoding="utf-8")
                msg = f"case {case} (seed {SEED}): `{' '.join(command)}` raised {error!r}; matrix: {kept}"
                raise AssertionError(msg) from error
            slowest = max(slowest, time.monotonic() - started)
            assert result.code in (0, 1, 2), (case, command, result.code, result.err[-2000:])
            assert "Traceback" not in result.err, (case, command, result.err[-2000:])
            if result.code == 2:
                assert "buildmatrix: error: " in result.err, (case, command, result.err[-2000:])
            codes[result.code] = codes.get(result.code, 0) + 1
            # A matrix `plan` rejects is rejected by every command alike (one loader);
            # the others run on every matrix that parses, and on every 25th case anyway.
            if command == ("plan",) and result.code != 0 and case % 25 != 0:
                break
    # The mutator must reach both sides: rejected matrices and ones that still work.
    assert codes.get(2, 0) > CASES // 10, codes
    assert codes.get(0, 0) > 0, codes
