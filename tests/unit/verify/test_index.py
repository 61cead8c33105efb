"""buildmatrix.verify.index: the package index client (PEP 503/691 served on 127.0.0.1 by a thread)
and pip's index configuration.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from packaging.version import Version

from buildmatrix.model import Matrix
from buildmatrix.verify.index import IndexConfig, SimpleIndexClient, index_config
from tests.support.ocifactory import RELEASE
from tests.support.verifying import run_verify


class _IndexHandler(http.server.BaseHTTPRequestHandler):
    projects: ClassVar[dict[str, list[tuple[str, str | None]]]] = {}
    json_projects: ClassVar[frozenset[str]] = frozenset()
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        name = self.path.strip("/").split("/")[-1]
        files = self.projects.get(name)
        if not self.path.startswith("/simple/") or files is None:
            self.send_error(404)
            return
        if name in self.json_projects and "vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
            body = json.dumps(
                {
                    "meta": {"api-version": "1.1"},
                    "name": name,
                    "files": [
                        {"filename": f, "url": f"../../files/{f}", "hashes": {}, "yanked": y or False}
                        for f, y in files
                    ],
                }
            ).encode()
            content_type = "application/vnd.pypi.simple.v1+json"
        else:
            anchors = "".join(
                f'<a href="../../files/{f}#sha256=00"'
                + ("" if y is None else f' data-yanked="{y}"')
                + f">{f}</a><br/>\n"
                for f, y in files
            )
            body = f"<!DOCTYPE html><html><body>{anchors}</body></html>".encode()
            content_type = "text/html"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_index() -> Iterator[Callable[..., str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(projects: dict[str, list[tuple[str, str | None]]], json_projects: Sequence[str] = ()) -> str:
        handler = type(
            "Handler",
            (_IndexHandler,),
            {"projects": projects, "json_projects": frozenset(json_projects), "requests": []},
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/simple/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_check_index_finds_missing_and_yanked(local_index: Callable[..., str], matrix: Matrix) -> None:
    url = local_index(
        {
            # vllm as PEP 691 JSON, the others as PEP 503 HTML.
            "vllm": [("vllm-0.11.0-cp38-abi3-manylinux1_x86_64.whl", None), ("vllm-0.11.0.tar.gz", None)],
            "nixl": [("nixl-0.7.1-py3-none-any.whl", "broken CUDA 13 build"), ("nixl-0.7.0.tar.gz", None)],
            "sglang": [("sglang-0.5.3.post3-py3-none-any.whl", None)],
            "tensorrt-llm": [
                ("tensorrt_llm-1.2.0rc3-cp312-cp312-linux_x86_64.whl", None),
                ("tensorrt_llm-1.2.0rc3.tar.gz", "wrong"),  # one file yanked: version still fine
            ],
        },
        json_projects=["vllm"],
    )
    report = run_verify(matrix, check_index=True, index_url=url, releases=(matrix.find_release(RELEASE),))
    index_checks = {c.name: c for c in report.checks if c.subject == url}
    assert set(index_checks) == {"vllm", "nixl", "sglang", "tensorrt-llm"}
    assert index_checks["vllm"].ok
    assert index_checks["tensorrt-llm"].ok
    assert not index_checks["nixl"].ok
    assert index_checks["nixl"].found == "0.7.1 yanked"
    assert "broken CUDA 13 build" in index_checks["nixl"].detail
    assert not index_checks["sglang"].ok
    assert index_checks["sglang"].found == "(missing)"
    assert "0.5.3.post3" in index_checks["sglang"].detail


def test_extra_index_urls_are_a_union(local_index: Callable[..., str]) -> None:
    first = local_index({"vllm": [("vllm-0.11.0.tar.gz", None)]})
    second = local_index({"vllm": [("vllm-0.12.0.tar.gz", None)], "nixl": [("nixl-0.7.1.tar.gz", None)]})
    client = SimpleIndexClient(IndexConfig(index_url=first, extra_index_urls=(second,)))
    vllm = client.project("VLLM")
    assert vllm.exists(Version("0.11.0"))
    assert vllm.exists(Version("0.12.0"))
    assert vllm.found_on == (first, second)
    assert client.project("nixl").found_on == (second,)
    assert not client.project("sglang").files


def test_index_config_follows_pip(tmp_path: Path) -> None:
    assert index_config("https://a/simple", ["https://b/simple"]).urls == (
        "https://a/simple",
        "https://b/simple",
    )
    env = {"PIP_INDEX_URL": "https://env/simple", "PIP_EXTRA_INDEX_URL": "https://x https://y"}
    assert index_config(environ=env).urls == ("https://env/simple", "https://x", "https://y")
    config = {
        "global.index-url": "https://global/simple",
        "install.index-url": "https://install/simple",
        "global.extra-index-url": "file:///opt/pypi/simple file:///opt/more",
    }
    assert index_config(environ={}, pip_config=config).urls == (
        "https://install/simple",
        "file:///opt/pypi/simple",
        "file:///opt/more",
    )
    assert index_config(environ={}, pip_config={}).urls == ("https://pypi.org/simple/",)


def test_file_index_like_pip(tmp_path: Path) -> None:
    page = tmp_path / "simple" / "nixl" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(
        '<a href="../../files/nixl-0.7.1-py3-none-any.whl" data-yanked>nixl-0.7.1-py3-none-any.whl</a>'
    )
    client = SimpleIndexClient(IndexConfig(index_url=(tmp_path / "simple").as_uri()))
    nixl = client.project("nixl")
    assert nixl.exists(Version("0.7.1"))
    assert nixl.yanked_reason(Version("0.7.1")) == ""
    assert not client.project("vllm").files


def test_unreachable_index_is_exit_2(matrix: Matrix) -> None:
    report = run_verify(
        matrix, check_index=True, index_url="http://127.0.0.1:9/simple/", releases=(matrix.releases[0],)
    )
    assert report.exit_code == 2
    assert any("unreachable" in error for error in report.errors)


class _HugePage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>" + b"x" * 4096 + b"</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_index_pages_are_read_through_a_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from buildmatrix.verify import index

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HugePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(index, "MAX_PAGE_BYTES", 1024)
        client = index.SimpleIndexClient(
            index.IndexConfig(index_url=f"http://127.0.0.1:{server.server_address[1]}/")
        )
        with pytest.raises(
            index.IndexUnavailableError, match="is larger than 1024 bytes; refusing to read it"
        ):
            client.project("vllm")
    finally:
        server.shutdown()
