"""A small HTTP client for package indexes: JSON pages and single byte ranges.

One keep-alive connection per thread and host (``http.client``; no new
dependency). Range requests ask for one range at a time and accept only a
``206`` whose ``Content-Range`` is exactly that range; a server that answers
``200`` ignores ranges, and the caller falls back to reading the whole file.
Credentials in a URL are sent as basic auth and never printed (``buildmatrix.redact``).
"""

from __future__ import annotations

import base64
import http.client
import re
import threading
from dataclasses import dataclass
from typing import IO
from urllib.parse import unquote, urljoin, urlsplit

from buildmatrix.redact import redact_url

__all__ = ["HttpError", "RangeNotSupported", "download", "fetch", "fetch_range"]

TIMEOUT = 60
MAX_REDIRECTS = 5
USER_AGENT = "buildmatrix-installs"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_local = threading.local()


class HttpError(Exception):
    """A request failed: unreachable host, an error status, a malformed answer."""


class RangeNotSupported(HttpError):
    """The server answered a range request with the whole file (status 200)."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    url: str  # after redirects


def _connection(scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
    pool: dict[tuple[str, str, int | None], http.client.HTTPConnection] = getattr(_local, "pool", {})
    _local.pool = pool
    key = (scheme, host, port)
    if key not in pool:
        kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        pool[key] = kind(host, port, timeout=TIMEOUT)
    return pool[key]


def _request(url: str, headers: dict[str, str], *, limit: int | None) -> Response:
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"not an http(s) URL: {redact_url(url)}"
            raise HttpError(msg)
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            sent["Authorization"] = "Basic " + base64.b64encode(token).decode()
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        body, status, answer = b"", 0, {}
        for attempt in range(2):  # a kept-alive connection the server closed: retry once
            connection = _connection(parts.scheme, parts.hostname, parts.port)
            try:
                connection.request("GET", path, headers=sent)
                response = connection.getresponse()
                status = response.status
                answer = {k.lower(): v for k, v in response.getheaders()}
                if limit is not None and status == 200:
                    # A server ignoring a range: the caller downloads the file itself.
                    connection.close()
                    body = b""
                else:
                    body = response.read()
                break
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                if attempt:
                    msg = f"GET {redact_url(url)}: {error}"
                    raise HttpError(msg) from None
        if status in (301, 302, 303, 307, 308) and "location" in answer:
            url = urljoin(url, answer["location"])
            continue
        return Response(status, answer, body, url)
    msg = f"GET {redact_url(url)}: more than {MAX_REDIRECTS} redirects"
    raise HttpError(msg)


def fetch(url: str, accept: str = "*/*") -> Response:
    """GET ``url`` whole; an error status is an ``HttpError``."""
    response = _request(url, {"Accept": accept}, limit=None)
    if response.status != 200:
        msg = f"GET {redact_url(url)}: HTTP {response.status}"
        raise HttpError(msg)
    return response


def fetch_range(url: str, start: int, end: int | None) -> tuple[bytes, int]:
    """Bytes ``start..end`` (inclusive; ``start < 0``: the last ``-start`` bytes) and the file's size.

    Raises ``RangeNotSupported`` when the server answers 200 instead of 206.
    """
    spec = f"bytes={start}" if start < 0 else f"bytes={start}-{'' if end is None else end}"
    response = _request(url, {"Range": spec}, limit=0)
    if response.status == 200:
        raise RangeNotSupported(f"{redact_url(url)} ignores range requests")
    if response.status != 206:
        msg = f"GET {redact_url(url)} ({spec}): HTTP {response.status}"
        raise HttpError(msg)
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match is None or match.group(3) == "*":
        msg = f"GET {redact_url(url)} ({spec}): a 206 without a usable Content-Range (multiple ranges?)"
        raise HttpError(msg)
    first, last, total = int(match.group(1)), int(match.group(2)), int(match.group(3))
    expected_first = max(0, total + start) if start < 0 else start
    if first != expected_first or len(response.body) != last - first + 1:
        msg = f"GET {redact_url(url)} ({spec}): the server sent bytes {first}-{last}, not the range asked for"
        raise HttpError(msg)
    return response.body, total


def download(url: str, out: IO[bytes], *, limit: int) -> int:
    """Stream ``url`` whole into ``out``; refuses more than ``limit`` bytes. Returns the size."""
    parts = urlsplit(url)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "", parts.port, timeout=TIMEOUT)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader("location"):
                url = urljoin(url, response.getheader("location") or "")
                continue
            if response.status != 200:
                msg = f"GET {redact_url(url)}: HTTP {response.status}"
                raise HttpError(msg)
            size = 0
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    msg = f"GET {redact_url(url)}: more than {limit} bytes"
                    raise HttpError(msg)
                out.write(chunk)
            return size
        except (OSError, http.client.HTTPException) as error:
            msg = f"GET {redact_url(url)}: {error}"
            raise HttpError(msg) from None
        finally:
            connection.close()
    msg = f"GET {redact_url(url)}: more than {MAX_REDIRECTS} redirects"
    raise HttpError(msg)
