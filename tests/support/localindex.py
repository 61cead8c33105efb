"""A PEP 503/691 package index on 127.0.0.1 for tests, with or without HTTP range support."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

__all__ = ["Served", "build_sdist", "build_wheel", "serve_index"]

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def build_wheel(
    folder: Path,
    name: str,
    version: str,
    tag: str,
    *,
    files: Mapping[str, bytes] | None = None,
    requires: Sequence[str] = (),
    extras: Sequence[str] = (),
) -> Path:
    """A valid wheel (METADATA with Requires-Dist, WHEEL, RECORD) carrying ``files``."""
    dist = canonicalize_name(name).replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    contents = {
        **(files or {}),
        f"{dist}/__init__.py": b"",
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\nTag: {tag}\n"
        ).encode(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in contents.items():
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def build_sdist(folder: Path, name: str, version: str, pkg_info: str) -> Path:
    """A source distribution whose setup.py fails loudly if anything ever builds it."""
    base = f"{canonicalize_name(name).replace('-', '_')}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{base}.tar.gz"
    members = {
        f"{base}/PKG-INFO": pkg_info.encode(),
        f"{base}/setup.py": b"raise SystemExit('this sdist was built: the installs check never builds')\n",
        f"{base}/pyproject.toml": (
            b'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        ),
    }
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members.items():
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    return path


@dataclass
class Served:
    url: str  # .../simple
    files: dict[str, Path]
    ranges: bool
    bytes_sent: int = 0
    range_requests: int = 0
    full_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def file_url(self, filename: str) -> str:
        return self.url.rsplit("/simple", 1)[0] + f"/files/{filename}"


def _project(filename: str) -> str:
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[0])
    return str(parse_sdist_filename(filename)[0])


@contextmanager
def serve_index(files: Sequence[Path], *, ranges: bool = True) -> Iterator[Served]:
    by_name = {path.name: path for path in files}
    projects: dict[str, list[str]] = {}
    for filename in by_name:
        projects.setdefault(_project(filename), []).append(filename)
    served = Served(url="", files=by_name, ranges=ranges)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, extra: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # a client that stops reading a 200 it asked a range of
                with served.lock:
                    served.bytes_sent += len(body)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if parts[:1] == ["simple"] and len(parts) == 2:
                self._page(canonicalize_name(parts[1]))
            elif parts[:1] == ["files"] and len(parts) == 2 and parts[1] in by_name:
                self._file(by_name[parts[1]])
            else:
                self._send(404, b"not found", "text/plain")

        def _page(self, name: str) -> None:
            names = projects.get(name)
            if names is None:
                self._send(404, b"no such project", "text/plain")
                return
            entries = []
            for filename in sorted(names):
                data = by_name[filename].read_bytes()
                entries.append(
                    {
                        "filename": filename,
                        "url": f"../../files/{filename}",
                        "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                        "size": len(data),
                        "upload-time": "2025-01-01T00:00:00Z",
                    }
                )
            if "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
                body = json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": entries}).encode()
                self._send(200, body, "application/vnd.pypi.simple.v1+json")
                return
            links = "".join(
                f'<a href="{html.escape(e["url"])}#sha256={e["hashes"]["sha256"]}">'
                f"{html.escape(e['filename'])}</a>\n"
                for e in entries
            )
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode(), "text/html")

        def _file(self, path: Path) -> None:
            data = path.read_bytes()
            match = _RANGE.fullmatch(self.headers.get("Range", "").strip())
            if not served.ranges or match is None or not (match.group(1) or match.group(2)):
                with served.lock:
                    served.full_requests += 1
                extra = {"Accept-Ranges": "bytes"} if served.ranges else {}
                self._send(200, data, "application/octet-stream", extra)
                return
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(len(data) - 1, int(last) if last else len(data) - 1)
            else:
                start, end = max(0, len(data) - int(last)), len(data) - 1
            if start >= len(data):
                self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
                return
            with served.lock:
                served.range_requests += 1
            self._send(
                206,
                data[start : end + 1],
                "application/octet-stream",
                {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"},
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    served.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
