"""Every bad file, flag, path and environment variable: exit 2 naming the culprit, no traceback.

The table runs the real command line (``python -m buildmatrix``) in a child
process, so the exit code and stderr are exactly what a person sees. Below it:
interrupts (start-up and mid-build), failed builds' log tails and dry runs that
run as printed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import MATRIX_PATH, REPO_ROOT


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]  # {tmp} is the test's folder, {matrix} the real matrix.toml
    expect: str  # a fragment of the error message naming the culprit
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    absent: str = ""  # a path under {tmp} that must not exist afterwards


def _fifo(tmp: Path) -> None:
    os.mkfifo(tmp / "fifo.toml")


def _write(name: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return setup


def _manifest_folder(tmp: Path) -> None:
    (tmp / "wheelhouse" / "manifest.json").mkdir(parents=True)


def _bad_dockerfile(tmp: Path) -> None:
    for name in ("matrix.toml",):
        shutil.copy(REPO_ROOT / name, tmp / name)
    (tmp / "examples").symlink_to(REPO_ROOT / "examples")
    (tmp / "containers").mkdir()
    (tmp / "containers" / "Dockerfile").write_text("FROM --platform=$BUILDPLATFORM\nARG PIN_VLLM\n")


def _bad_image_json(tmp: Path) -> None:
    layout = tmp / "oci"
    (layout / "blobs").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('[{"manifests": "not a list"}]')


CASES = [
    Case("matrix-fifo", ["plan", "--matrix", "{tmp}/fifo.toml"], "not a regular file", setup=_fifo),
    Case("matrix-folder", ["plan", "--matrix", "{tmp}"], "is a folder"),
    Case("matrix-missing", ["plan", "--matrix", "{tmp}/nope.toml"], "matrix file not found"),
    Case(
        "matrix-brace", ["plan", "--matrix", "{tmp}/m.toml"], "invalid TOML", setup=_write("m.toml", "a = {")
    ),
    Case(
        "matrix-huge-int",
        ["plan", "--matrix", "{tmp}/m.toml"],
        "invalid TOML",
        setup=_write("m.toml", "a = " + "9" * 5000 + "\n"),
    ),
    Case(
        "matrix-deep-nesting",
        ["plan", "--matrix", "{tmp}/m.toml"],
        "nested too deeply",
        setup=_write("m.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n"),
    ),
    Case(
        "matrix-nesting-over-cap",
        ["plan", "--matrix", "{tmp}/m.toml"],
        "nested more than 16 levels",
        setup=_write("m.toml", "a = " + "[" * 40 + "]" * 40 + "\n"),
    ),
    Case(
        "matrix-too-large",
        ["plan", "--matrix", "{tmp}/m.toml"],
        "the limit is",
        setup=_write("m.toml", "# padding\n" * 500_000),
    ),
    Case(
        "matrix-not-utf8",
        ["plan", "--matrix", "{tmp}/m.toml"],
        "not UTF-8",
        setup=_write("m.toml", b"\xff\xfe"),
    ),
    Case("matrix-unknown-user", ["plan", "--matrix", "~nosuchuser-bm/matrix.toml"], "no such user"),
    Case(
        "wheels-out-is-a-file",
        ["wheels", "--matrix", "{matrix}", "--out", "{tmp}/f"],
        "is a file, not a folder",
        setup=_write("f", "x"),
    ),
    Case(
        "wheels-dry-run-out-is-a-file",
        ["wheels", "--matrix", "{matrix}", "--out", "{tmp}/f", "--dry-run"],
        "is a file, not a folder",
        setup=_write("f", "x"),
    ),
    Case(
        "wheels-out-cannot-be-created",
        ["wheels", "--matrix", "{matrix}", "--out", "/proc/buildmatrix-out"],
        "cannot create the folder",
    ),
    Case(
        "wheels-manifest-is-a-folder",
        ["wheels", "--matrix", "{matrix}", "--out", "{tmp}/wheelhouse", "--package", "ai-dynamo"],
        "manifest.json must be a file",
        setup=_manifest_folder,
    ),
    Case(
        "ci-github-output-missing-folder",
        ["ci", "--matrix", "{matrix}", "--github-output", "/nonexistent/dir/out"],
        "--github-output /nonexistent/dir/out",
    ),
    Case(
        "ci-GITHUB_OUTPUT-missing-folder",
        ["ci", "--matrix", "{matrix}"],
        "$GITHUB_OUTPUT /nonexistent/x",
        env={"GITHUB_OUTPUT": "/nonexistent/x"},
    ),
    Case(
        "ci-GITHUB_OUTPUT-is-a-folder",
        ["ci", "--matrix", "{matrix}"],
        "is a folder",
        env={"GITHUB_OUTPUT": "{tmp}"},
    ),
    Case(
        "ci-GITHUB_STEP_SUMMARY-missing-folder",
        ["ci", "--matrix", "{matrix}"],
        "$GITHUB_STEP_SUMMARY",
        env={"GITHUB_STEP_SUMMARY": "/nonexistent/summary.md"},
    ),
    Case(
        "images-dry-run-out-is-a-file",
        ["images", "vllm", "--matrix", "{matrix}", "--dry-run", "--out", "{tmp}/f"],
        "is a file, not a folder",
        setup=_write("f", "x"),
    ),
    Case("docs-out-is-a-folder", ["docs", "--matrix", "{matrix}", "--out", "{tmp}"], "is a folder"),
    Case(
        "docs-out-in-a-missing-folder",
        ["docs", "--matrix", "{matrix}", "--out", "{tmp}/new/path/x.md"],
        "folders are not created",
        absent="new",
    ),
    Case(
        "bad-SOURCE_DATE_EPOCH",
        ["plan", "--matrix", "{matrix}"],
        "SOURCE_DATE_EPOCH='yesterday'",
        env={"SOURCE_DATE_EPOCH": "yesterday"},
    ),
    Case(
        "malformed-dockerfile",
        ["images", "vllm", "--matrix", "{tmp}/matrix.toml", "--dry-run"],
        "malformed Dockerfile",
        setup=_bad_dockerfile,
    ),
    Case(
        "image-json-of-the-wrong-shape",
        ["verify", "--matrix", "{matrix}", "--image", "oci:{tmp}/oci"],
        "cannot read image",
        setup=_bad_image_json,
    ),
]


def run_cli(
    args: list[str], env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buildmatrix", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_exits_2_naming_the_culprit(case: Case, tmp_path: Path) -> None:
    if case.setup is not None:
        case.setup(tmp_path)

    def fill(value: str) -> str:
        return value.replace("{tmp}", str(tmp_path)).replace("{matrix}", str(MATRIX_PATH))

    env = {key: fill(value) for key, value in case.env.items()}
    env.setdefault("GITHUB_OUTPUT", "")
    env.setdefault("GITHUB_STEP_SUMMARY", "")
    result = run_cli([fill(arg) for arg in case.args], env=env, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error: " in line]
    assert any(case.expect in line for line in errors), result.stderr
    if case.absent:
        assert not (tmp_path / case.absent).exists()


def test_matrix_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    """As git and nox do: the nearest matrix.toml above the current folder."""
    shutil.copy(MATRIX_PATH, tmp_path / "matrix.toml")
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    result = run_cli(["plan", "--format", "json"], cwd=below)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    elsewhere = run_cli(["plan"], cwd=Path("/"), env={"BUILDMATRIX_MATRIX": ""})
    assert elsewhere.returncode == 2
    assert "matrix file not found" in elsewhere.stderr


ENTRY_MODULES = ("buildmatrix/__init__.py", "buildmatrix/__main__.py", "buildmatrix/_entry.py")


def _buildmatrix_frames(err: str) -> list[str]:
    """Traceback frames in buildmatrix's code, leaving out the import of its entry point.

    Python itself may print a traceback for an interrupt while it is still loading
    the entry point (runpy, site, importlib); from the first line that runs a
    command, buildmatrix must turn Ctrl-C into "interrupted" and exit 130.
    """
    frames = [line.strip() for line in err.splitlines() if line.strip().startswith("File ")]
    return [
        frame
        for frame in frames
        if "/buildmatrix/" in frame
        and not (frame.endswith("in <module>") and any(name in frame for name in ENTRY_MODULES))
    ]


def test_ctrl_c_during_start_up_is_no_traceback() -> None:
    seen = set()
    # Every 8 ms through start-up, then two later points for a slow (loaded) machine.
    for delay in [step * 0.008 for step in range(40)] + [0.45, 0.7]:
        process = subprocess.Popen(
            [sys.executable, "-m", "buildmatrix", "plan", "--matrix", str(MATRIX_PATH)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert not _buildmatrix_frames(err), err
        if "Traceback" not in err:
            assert process.returncode in (0, 130, -signal.SIGINT), (process.returncode, err)
        seen.add(process.returncode)
    assert 130 in seen, seen  # the sweep reached buildmatrix's own start-up at least once


def test_images_dry_run_without_any_engine_names_none(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with git and nothing that builds images
    bin_dir.mkdir()
    git = shutil.which("git")
    if git is not None:
        (bin_dir / "git").symlink_to(git)
    env = {"PATH": str(bin_dir)}
    table = run_cli(["images", "vllm", "--matrix", str(MATRIX_PATH), "--dry-run"], env=env)
    assert table.returncode == 0, table.stderr
    title = table.stdout.splitlines()[0]
    assert "none usable here" in title, title
    assert "engine buildx" not in title
    data = run_cli(["images", "vllm", "--matrix", str(MATRIX_PATH), "--dry-run", "--format", "json"], env=env)
    assert json.loads(data.stdout)["engine_usable"] is False


def _broken_runtime(tmp_path: Path) -> Path:
    shutil.copy(MATRIX_PATH, tmp_path / "matrix.toml")
    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    source = tmp_path / "examples" / "ai-dynamo-runtime" / "src" / "ai_dynamo_runtime" / "_blockhash.c"
    source.write_text(source.read_text() + "\nthis_is_not_c buildmatrix_marker;\n")
    return tmp_path / "matrix.toml"


@pytest.mark.slow
def test_a_failed_build_prints_the_last_lines_of_its_log(tmp_path: Path) -> None:
    matrix = _broken_runtime(tmp_path)
    result = run_cli(["wheels", "--matrix", str(matrix), "--package", "ai-dynamo-runtime"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    if shutil.which("docker") is None and shutil.which("podman") is None:
        # The auto backend's note explains the builds, so it comes before them.
        note = result.stderr.index("note: no container engine answers")
        assert note < result.stderr.index("\n+ "), result.stderr[:2000]
    assert "Traceback" not in result.stderr
    failed = result.stderr[result.stderr.index("FAILED") :]
    assert "last lines of" in failed
    assert "this_is_not_c" in failed  # the compiler's complaint, not only "see the log"
    # The echo and the failure line name the work folder as $WORK, not a 400-character path.
    assert "--out-dir $WORK/" in result.stderr
    assert ".tmp-wheels-" not in failed.splitlines()[0]
    assert not list((tmp_path / "wheelhouse").glob(".tmp-wheels-*"))


@pytest.mark.slow
def test_dry_run_commands_run_as_printed(tmp_path: Path) -> None:
    from buildmatrix.wheels.runner import DRY_RUN_WORK

    result = run_cli(
        ["wheels", "--matrix", str(MATRIX_PATH), "--package", "ai-dynamo-runtime", "--dry-run"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "$WORK" not in result.stdout
    assert "{wheel}" not in result.stdout
    script = tmp_path / "dry-run.sh"
    script.write_text(result.stdout)
    ran = subprocess.run(["bash", "-e", str(script)], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr[-3000:]
    repaired = list(DRY_RUN_WORK.glob("ai-dynamo-runtime-*/repaired/*manylinux_2_28_*.whl"))
    assert len(repaired) == 1, ran.stderr[-3000:]
    shutil.rmtree(DRY_RUN_WORK, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_the_build_tree_and_leaves_no_work_folder(tmp_path: Path, sig: int) -> None:
    """SIGINT to the main process only (as `kill -INT` sends it), mid-build."""
    out = tmp_path / "wheelhouse"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buildmatrix",
            "wheels",
            "--matrix",
            str(MATRIX_PATH),
            "--package",
            "ai-dynamo-runtime",
            "--backend",
            "local",
            "--force",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    lines = []
    for line in process.stderr:  # wait until the build command itself is running
        lines.append(line)
        if line.startswith("+ ") and " build " in line:
            break
    time.sleep(0.4)
    process.send_signal(sig)
    rest = process.stderr.read()
    process.wait(timeout=60)
    err = "".join(lines) + rest
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert not list(out.glob(".tmp-wheels-*")), list(out.iterdir())
    assert not list(out.glob("*.whl"))
    strays = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(out) not in strays, [line for line in strays.splitlines() if str(out) in line]
