"""The release gate cannot be fooled (issue #10): no vacuous pass, exact pins, a
release record that is complete and current, a safe output folder, no leaked
credentials, bounded reads.

Wheels, manifests and scratch repositories are made by the tests; the real
builds are in tests/integration/verify/test_release_gate.py. (The output folder,
redaction, extras grouping and the index read cap: their modules' own test files.)
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from buildmatrix import _call
from buildmatrix.errors import CommandFailedError
from buildmatrix.loader import load_matrix
from buildmatrix.model import Matrix
from tests.support.verifying import EXACT_0_7_1, PASSWORD, REPO, TOKEN, buildmatrix, of, run

EXTRAS = ("vllm", "sglang", "trtllm")


def meta_wheel(
    folder: Path,
    version: str = "0.7.1",
    requires: Sequence[str] = EXACT_0_7_1,
    extras: Sequence[str] = EXTRAS,
    *,
    name: str = "ai-dynamo",
) -> Path:
    """A meta wheel whose METADATA says exactly ``requires`` and ``extras``."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    metadata += "".join(f"Provides-Extra: {e}\n" for e in extras)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{dist}/__init__.py", "")
        archive.writestr(f"{dist}-{version}.dist-info/METADATA", metadata)
        archive.writestr(f"{dist}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        archive.writestr(f"{dist}-{version}.dist-info/RECORD", "")
    return path


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    """The matrix with a meta package whose pyproject states main's extras statically
    (the repository checks stay fast; building it is tested on its own)."""
    from buildmatrix import docs

    root = tmp_path_factory.mktemp("repo")
    shutil.copy(REPO / "matrix.toml", root / "matrix.toml")
    shutil.copytree(REPO / "containers", root / "containers")
    package = root / "examples" / "ai-dynamo"
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        '[project]\nname = "ai-dynamo"\nversion = "0.8.0.dev0"\n'
        'dependencies = ["ai-dynamo-runtime==0.8.0.dev0"]\n'
        "[project.optional-dependencies]\n"
        'vllm = ["vllm[flashinfer]==0.12.0", "nixl[cu12]<=0.8.0"]\n'
        'sglang = ["sglang==0.5.6", "nixl[cu12]<=0.8.0"]\n'
        'trtllm = ["tensorrt-llm==1.2.0rc5"]\n'
    )
    matrix = load_matrix(root / "matrix.toml")
    (root / "docs").mkdir()
    (root / "docs" / "support-matrix.md").write_text(docs.render(matrix))
    return matrix


def test_the_repository_alone_verifies_clean(scratch: Matrix) -> None:
    report = run(scratch)
    assert report.exit_code == 0, [c for c in report.checks if not c.ok]
    assert report.checks


def test_empty_folder_and_a_folder_named_like_a_wheel_fail(tmp_path: Path, scratch: Matrix) -> None:
    empty = tmp_path / "dist"
    empty.mkdir()
    disguised = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    disguised.mkdir()
    for folder in (empty, disguised):
        report = run(scratch, wheels=(folder,))
        [check] = of(report, folder)
        assert (check.ok, check.found) == (False, "no wheel files")
        assert report.exit_code == 1


def test_missing_path_and_non_wheels_fail_naming_them(tmp_path: Path, scratch: Matrix) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a wheel")
    report = run(scratch, wheels=(text,))
    [check] = of(report, text)
    assert not check.ok
    assert check.detail.startswith("not a wheel")
    # A zip named like a wheel but without METADATA: unreadable input, exit 2, named.
    fake = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("ai_dynamo/__init__.py", "")
    report = run(scratch, wheels=(fake,))
    assert report.exit_code == 2
    assert any(str(fake) in e and "METADATA" in e for e in report.errors)
    report = run(scratch, wheels=(tmp_path / "nowhere",))
    assert report.exit_code == 2
    assert report.errors == (f"--wheel {tmp_path / 'nowhere'}: no such file or folder",)


def test_wheel_of_another_release_fails_naming_its_release(tmp_path: Path, scratch: Matrix) -> None:
    wheel = meta_wheel(tmp_path)
    report = run(scratch, wheels=(wheel,), releases=(scratch.find_release("main"),))
    [check] = of(report, wheel)
    assert not check.ok
    assert check.detail == "the wheel belongs to release v0.7.1, not to the selected main"
    assert report.exit_code == 1


def test_cli_counts_artifacts_and_checks(tmp_path: Path, scratch: Matrix, cli: Callable[..., Any]) -> None:
    wheel = meta_wheel(tmp_path / "dist")
    result = cli("verify", "--matrix", scratch.path, "--wheel", wheel.parent, "--format", "json")
    summary = json.loads(result.out)["summary"]
    assert result.code == 0, result.out
    assert summary["artifacts"] == 1
    assert summary["checks"] == len(json.loads(result.out)["checks"]) > 0
    result = cli("verify", "--matrix", scratch.path, "--wheel", wheel.parent)
    assert result.code == 0
    assert "all checks hold (" in result.out
    assert ", 1 artifacts)" in result.out
    (tmp_path / "empty").mkdir()
    result = cli("verify", "--matrix", scratch.path, "--wheel", tmp_path / "empty")
    assert result.code == 1
    assert "no wheel files" in result.out


def test_exact_meta_wheel_passes_with_every_requirement_checked(tmp_path: Path, scratch: Matrix) -> None:
    wheel = meta_wheel(tmp_path)
    report = run(scratch, wheels=(wheel,))
    checks = of(report, wheel)
    assert len(checks) == 1 + len(EXACT_0_7_1)  # the version, then each requirement
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


@pytest.mark.parametrize(
    ("nixl", "problem"),
    [
        ("nixl[cu12]", "specifier (any) differs from <=0.7.1 (admits the pin 0.7.1)"),
        ("nixl[cu12]>=0.1", "specifier >=0.1 differs from <=0.7.1 (admits the pin 0.7.1)"),
        ("nixl[cu12]<=0.9.0", "specifier <=0.9.0 differs from <=0.7.1 (admits the pin 0.7.1)"),
        ("nixl[cu12]<=0.6.0", "specifier <=0.6.0 differs from <=0.7.1 (does not admit the pin 0.7.1)"),
        ("nixl<=0.7.1", "extras [] differ from [cu12]"),
        ("nixl[cu12,cu13]<=0.7.1", "extras [cu12,cu13] differ from [cu12]"),
        ('nixl[cu12]<=0.7.1; python_version >= "3.11" and', 'marker python_version >= "3.11" differs'),
    ],
)
def test_loose_nixl_specifiers_fail(tmp_path: Path, scratch: Matrix, nixl: str, problem: str) -> None:
    marker = 'extra == "vllm"'
    line = f"{nixl} {marker}" if nixl.endswith(" and") else f"{nixl}; {marker}"
    requires = [line if r == f"nixl[cu12]<=0.7.1; {marker}" else r for r in EXACT_0_7_1]
    wheel = meta_wheel(tmp_path, requires=requires)
    report = run(scratch, wheels=(wheel,))
    failed = [c for c in of(report, wheel) if not c.ok]
    assert [(c.name, c.detail.split(":")[0]) for c in failed] == [("nixl", "extra 'vllm'")]
    assert problem in failed[0].detail
    assert report.exit_code == 1


def test_unexpected_missing_and_duplicate_requirements_fail(tmp_path: Path, scratch: Matrix) -> None:
    requires = [
        *(r for r in EXACT_0_7_1 if not r.startswith("sglang")),  # sglang missing from its extra
        'uvloop; extra == "vllm"',  # not generated
        'vllm[flashinfer]==0.11.0; extra == "vllm"',  # required twice
        "requests",  # a base requirement the matrix does not pin: noted, not the matrix's to say
        "vllm==0.12.0",  # a pinned distribution in the base requirements bypasses the extra
        'torch; extra == "extra-thing"',  # an extra the matrix does not generate
    ]
    wheel = meta_wheel(tmp_path, requires=requires, extras=(*EXTRAS, "extra-thing"))
    report = run(scratch, wheels=(wheel,))
    assert report.notes == (f"{wheel}: base requirements the matrix does not pin, not checked: requests",)
    failed = {(c.name, c.found, c.detail) for c in of(report, wheel) if not c.ok}
    assert failed == {
        ("sglang", "(not required)", "extra 'sglang' does not require sglang (v0.7.1)"),
        (
            "uvloop",
            "uvloop",
            "extra 'vllm': unexpected requirement, the matrix generates none on uvloop (v0.7.1)",
        ),
        (
            "vllm",
            "vllm[flashinfer]==0.11.0; vllm[flashinfer]==0.11.0",
            "extra 'vllm': required 2 times (v0.7.1)",
        ),
        (
            "vllm",
            "vllm==0.12.0",
            "base requirements: unexpected requirement, the matrix generates none on vllm (v0.7.1)",
        ),
        (
            "torch",
            "torch",
            "extra 'extra-thing': unexpected requirement, the matrix generates none on torch (v0.7.1)",
        ),
        (
            "extra-thing",
            "Provides-Extra: extra-thing",
            "the matrix generates no extra 'extra-thing' (v0.7.1)",
        ),
    }


def test_requirement_without_a_clear_extra_fails(tmp_path: Path, scratch: Matrix) -> None:
    requires = [*EXACT_0_7_1, 'uvloop; extra == "vllm" or extra == "sglang"']
    wheel = meta_wheel(tmp_path, requires=requires)
    failed = [c for c in of(run(scratch, wheels=(wheel,)), wheel) if not c.ok]
    assert [(c.name, c.detail) for c in failed] == [
        ("uvloop", "cannot tell which extra requires this (v0.7.1)")
    ]


def test_metadata_bomb_is_refused_with_a_message(tmp_path: Path, scratch: Matrix) -> None:
    wheel = tmp_path / "ai_dynamo-0.7.1-py3-none-any.whl"
    zeros = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("ai_dynamo-0.7.1.dist-info/METADATA", "w") as member,
    ):
        for _ in range(256):  # 256 MiB inflated, a few hundred kB on disk
            member.write(zeros)
    assert wheel.stat().st_size < 2 << 20
    report = run(scratch, wheels=(wheel,))
    assert report.exit_code == 2
    [error] = [e for e in report.errors if str(wheel) in e]
    assert "METADATA inflates to more than 16777216 bytes" in error


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    authorizations: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.authorizations.append(self.headers.get("Authorization", ""))
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_index() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_planted_credentials_never_leave(tmp_path: Path, refusing_index: str) -> None:
    """Every output of every path an index URL takes: stdout, stderr, JSON, bake file, logs."""
    secret_url = f"http://user:{PASSWORD}@{refusing_index}/simple/?token={TOKEN}"
    outputs: list[str] = []
    for fmt in ("json", "table"):
        result = buildmatrix(
            "verify", "--release", "main", "--check-index", "--index-url", secret_url, "--format", fmt
        )
        assert result.returncode == 2, result.stderr
        outputs += [result.stdout, result.stderr]
    assert "HTTP 401" in outputs[0] + outputs[1]
    # The user info was sent as HTTP basic auth, as pip sends it.
    assert "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode() in _Unauthorized.authorizations
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "buildmatrix",
            "verify",
            "--release",
            "main",
            "--check-index",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_INDEX_URL": secret_url},
    )
    assert result.returncode == 2
    outputs += [result.stdout, result.stderr]
    images_out = tmp_path / "images"
    for url in (f"https://user:{PASSWORD}@pypi.example/simple", f"https://pypi.example/simple?token={TOKEN}"):
        args = ("images", "vllm", "--dry-run", "--engine", "buildx", "--out", images_out, "--index-url", url)
        result = buildmatrix(*args)
        assert result.returncode == 2
        assert "carries credentials" in result.stderr
        outputs += [result.stdout, result.stderr]
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine pypi.example login user password {PASSWORD}\n")
    args = ("images", "vllm", "--dry-run", "--engine", "buildx", "--out", images_out, "--format", "json")
    result = buildmatrix(
        *args, "--index-url", "https://pypi.example/simple", "--secret", f"id=netrc,src={netrc}"
    )
    assert result.returncode == 0, result.stderr
    bake = images_out / "docker-bake.json"
    assert f"id=netrc,src={netrc}" in bake.read_text()  # the secret is passed as a secret
    outputs += [result.stdout, result.stderr, bake.read_text()]
    # A failing command with a credential in its arguments: its echo in the log, the message.
    log_path = tmp_path / "command.log"
    with log_path.open("w") as log, pytest.raises(CommandFailedError) as failure:
        _call.call(sys.executable, "-c", "raise SystemExit(3)", secret_url, log=log, echo=False)
    outputs += [failure.value.message, log_path.read_text()]
    assert "***" in failure.value.message
    for text in outputs:
        assert PASSWORD not in text
        assert TOKEN not in text


def test_matrix_urls_with_credentials_are_refused(tmp_path: Path) -> None:
    """The matrix's URLs go into labels and the docs page: credentials are bad input."""
    from buildmatrix.errors import MatrixError

    text = (REPO / "matrix.toml").read_text()
    plain = 'source = "https://github.com/ai-dynamo/dynamo"'
    assert plain in text
    (tmp_path / "matrix.toml").write_text(
        text.replace(plain, f'source = "https://user:{PASSWORD}@github.com/ai-dynamo/dynamo"')
    )
    with pytest.raises(MatrixError) as error:
        load_matrix(tmp_path / "matrix.toml")
    assert "carries credentials" in error.value.message
    assert "https://***@github.com/ai-dynamo/dynamo" in error.value.message
    assert PASSWORD not in error.value.message
