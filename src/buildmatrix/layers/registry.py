"""Images straight from a registry, through the OCI distribution API.

``docker://HOST/REPO:TAG`` or ``docker://HOST/REPO@sha256:...``: the index or
manifest, each platform's manifest and config, and the layer blobs, streamed
into the layer scan (``buildmatrix.layers.scan``) and checked against their
digests as they stream; nothing is written to disk.

As docker and skopeo do, a registry on ``localhost`` or 127.0.0.0/8 (or ::1) is
spoken to over plain HTTP; any other needs HTTPS with a verified certificate
unless ``tls_verify=False`` (then an unverified certificate, or plain HTTP when
the host speaks no TLS). Credentials come from the files containers and docker
use (``containers-auth.json(5)``): ``$REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json``,
``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``; the first file with
an entry for the repository (most specific key first) wins. They answer a
``Basic`` challenge, or buy a ``Bearer`` token from the realm the registry names
(the token flow of the distribution spec); neither credentials nor tokens ever
appear in a message.

Why not a client library: ``oras`` (oras-py 0.2.43) can stream a blob
(``get_blob(stream=True)`` returns a ``requests`` response), but its requests
retry every connection error five times with sleeps of 2+3**n seconds (about two
minutes before "registry down" is reported), ``get_manifest`` returns parsed
JSON so the bytes a digest names are lost, its token backend cannot answer a
``Basic`` challenge, and it reads credentials from docker's config only. This
client is ``http.client`` and the distribution spec's few endpoints.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import os
import re
import ssl
import urllib.parse
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from buildmatrix.layers.digest import DigestReader, check_digest, parse_digest
from buildmatrix.layers.image import _JSON_LIMIT, _Store
from buildmatrix.layers.scan import ImageError

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "RegistryClient",
    "RegistryReference",
    "auth_files",
    "find_credentials",
    "is_local_host",
    "open_registry_image",
    "parse_reference",
]

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DEFAULT_REGISTRY = "docker.io"
_API_HOSTS = {"docker.io": "registry-1.docker.io"}
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_TIMEOUT = 60.0
_MAX_REDIRECTS = 5
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True, slots=True)
class RegistryReference:
    host: str  # "127.0.0.1:5000", "ghcr.io"
    repository: str  # "dynamo/vllm-runtime"
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """What the manifest endpoint takes: the digest when given, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        return f"{text}@{self.digest}" if self.digest else text


def parse_reference(reference: str) -> RegistryReference:
    """``docker://[HOST/]REPO[:TAG][@DIGEST]``, validated; ValueError naming what is wrong."""
    if not reference.startswith("docker://"):
        msg = "a registry image is docker://HOST/REPO[:TAG][@DIGEST]"
        raise ValueError(msg)
    text = reference.removeprefix("docker://")
    if "@" in text.split("/", 1)[0]:
        # Credentials never belong in a reference (it is printed); say so without echoing them.
        msg = "user:password@ in an image reference is refused: put credentials in an auth file"
        raise ValueError(msg)
    name, _, digest = text.partition("@")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, path = first, rest
    else:
        host, path = DEFAULT_REGISTRY, name
    if not _HOST.fullmatch(host):
        msg = "the registry host is not a host[:port] (credentials belong in an auth file)"
        raise ValueError(msg)
    repository, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = path.rpartition(":")
        if not _TAG.fullmatch(tag):
            msg = f"invalid tag {tag!r}"
            raise ValueError(msg)
    if host == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPOSITORY.fullmatch(repository):
        msg = f"invalid repository {repository!r} (lowercase path components)"
        raise ValueError(msg)
    if digest:
        parse_digest(digest)
    elif "@" in text:
        msg = "an empty digest after @"
        raise ValueError(msg)
    return RegistryReference(host, repository, tag, digest or None)


def _shown(reference: str) -> str:
    """The reference for a message: any user info before the host is masked."""
    scheme, sep, rest = reference.partition("://")
    head, slash, tail = rest.partition("/")
    if "@" in head:
        head = "***@" + head.rsplit("@", 1)[1]
    return f"{scheme}{sep}{head}{slash}{tail}"


def is_local_host(host: str) -> bool:
    """``localhost`` or a loopback address (with or without a port): plain HTTP, as docker does."""
    name = host
    if name.startswith("["):
        name = name[1 : name.index("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- credentials


def auth_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The credential files containers-auth.json(5) and docker read, in their order."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    files = []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    files.append(config_home / "containers" / "auth.json")
    docker = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    files.append(docker / "config.json")
    return files


def find_credentials(host: str, repository: str, files: list[Path] | None = None) -> tuple[str, str] | None:
    """``(user, secret)`` for a repository from the first auth file that has an entry.

    Keys are tried most specific first (``host/ns/repo``, ``host/ns``, ``host``),
    plus docker's legacy ``https://host/v1/`` form. An unreadable file is an
    error naming the file, never its content.
    """
    keys = [f"{host}/{repository}"]
    parts = repository.split("/")
    keys += [f"{host}/{'/'.join(parts[:i])}" for i in range(len(parts) - 1, 0, -1)]
    keys += [host, f"https://{host}", f"https://{host}/v1/", f"http://{host}"]
    if host == DEFAULT_REGISTRY:
        keys += ["https://index.docker.io/v1/", "index.docker.io"]
    for path in auth_files() if files is None else files:
        if not path.is_file():
            continue
        try:
            auths = json.loads(path.read_text()).get("auths") or {}
        except (OSError, ValueError, AttributeError) as error:
            msg = f"cannot read the registry credentials in {path}: {type(error).__name__}"
            raise ImageError(msg) from None
        for key in keys:
            entry = auths.get(key)
            if isinstance(entry, dict) and entry.get("auth"):
                try:
                    user, sep, secret = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, sep, secret = "", "", ""
                if not sep:
                    msg = f"{path}: the entry for {key} is not base64 of user:password"
                    raise ImageError(msg)
                return user, secret
    return None


# --------------------------------------------------------------------------- the client


@dataclass(slots=True)
class _Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def _parse_challenge(header: str) -> _Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {
        match[1].lower(): (match[2] or match[3]).replace('\\"', '"')
        for match in _CHALLENGE_PARAM.finditer(rest)
    }
    return _Challenge(scheme.lower(), params)


class RegistryClient:
    """The distribution API of one registry host, for reading: manifests and blobs."""

    def __init__(
        self,
        host: str,
        *,
        tls_verify: bool = True,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.host = host
        self.api_host = _API_HOSTS.get(host, host)
        self.local = is_local_host(host)
        self.tls_verify = tls_verify
        self.scheme = "http" if self.local else "https"
        self._credentials = credentials
        self._authorization: str | None = None  # the header value that last worked
        self._plain_http_fallback = not tls_verify and not self.local

    def __repr__(self) -> str:  # never the credentials
        return f"RegistryClient({self.host!r}, scheme={self.scheme!r})"

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "http":
            return http.client.HTTPConnection(netloc, timeout=_TIMEOUT)
        context = ssl.create_default_context()
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(netloc, timeout=_TIMEOUT, context=context)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
        """GET ``/v2/...``, answering one auth challenge and following redirects.

        The response is open (a stream); the caller reads and closes it.
        """
        try:
            return self._get(path, dict(headers or {}))
        except ssl.SSLError as error:
            if self._plain_http_fallback and self.scheme == "https":
                self.scheme = "http"  # --tls-verify=false: the host may speak plain HTTP
                self._plain_http_fallback = False
                return self.get(path, headers)
            msg = (
                f"registry {self.host}: TLS failed ({error.reason or error}); pass --tls-verify=false "
                "for a registry without a valid certificate"
            )
            raise ImageError(msg) from None
        except (OSError, http.client.HTTPException) as error:
            if self._plain_http_fallback and self.scheme == "https":
                self.scheme = "http"
                self._plain_http_fallback = False
                return self.get(path, headers)
            msg = f"cannot reach registry {self.host} ({self.scheme}): {error}"
            raise ImageError(msg) from None

    def _get(self, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        response = self._request(path, headers)
        if response.status == 401:
            challenge = _parse_challenge(response.getheader("WWW-Authenticate") or "")
            response.read()
            response.close()
            self._authorization = self._answer(challenge)
            response = self._request(path, headers)
        return response

    def _request(self, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        url = urllib.parse.urlsplit(f"{self.scheme}://{self.api_host}{path}")
        for _ in range(_MAX_REDIRECTS + 1):
            # One connection per request: a response is a stream its reader closes.
            send = {"User-Agent": "buildmatrix", "Connection": "close", **headers}
            # Credentials go to the registry itself, never to where it redirects a blob.
            if self._authorization and url.netloc == self.api_host:
                send["Authorization"] = self._authorization
            connection = self._connection(url.scheme, url.netloc)
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request("GET", target, headers=send)
            response = connection.getresponse()
            if response.status not in (301, 302, 303, 307, 308):
                return response
            location = response.getheader("Location") or ""
            response.read()
            connection.close()
            url = urllib.parse.urlsplit(urllib.parse.urljoin(url.geturl(), location))
            if url.scheme not in ("http", "https"):
                msg = f"registry {self.host} redirected to a {url.scheme or 'relative'} URL"
                raise ImageError(msg)
        msg = f"registry {self.host}: more than {_MAX_REDIRECTS} redirects"
        raise ImageError(msg)

    def _answer(self, challenge: _Challenge) -> str:
        """The Authorization header for a challenge: Basic credentials, or a bearer token."""
        if challenge.scheme == "basic":
            if self._credentials is None:
                msg = f"registry {self.host} asks for credentials and no auth file has any for it"
                raise ImageError(msg)
            user, secret = self._credentials
            return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            msg = f"registry {self.host}: unsupported authentication challenge {challenge.scheme!r}"
            raise ImageError(msg)
        realm = urllib.parse.urlsplit(challenge.params["realm"])
        # Credentials travel to the realm: https, unless it is local or TLS was waived.
        plain_ok = is_local_host(realm.netloc) or not self.tls_verify
        if realm.scheme != "https" and not (realm.scheme == "http" and plain_ok):
            msg = f"registry {self.host}: its token realm is not an https URL"
            raise ImageError(msg)
        query: dict[str, str] = {
            key: challenge.params[key] for key in ("service", "scope") if key in challenge.params
        }
        headers = {"User-Agent": "buildmatrix", "Accept": "application/json"}
        if self._credentials is not None:
            user, secret = self._credentials
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        connection = self._connection(realm.scheme, realm.netloc)
        target = realm.path or "/"
        joined = "&".join(filter(None, [realm.query, urllib.parse.urlencode(query)]))
        connection.request("GET", f"{target}?{joined}" if joined else target, headers=headers)
        response = connection.getresponse()
        body = response.read(_JSON_LIMIT)
        connection.close()
        if response.status != 200:
            who = "with the credentials from the auth file" if self._credentials else "anonymously"
            msg = f"registry {self.host}: the token service refused a token {who} (HTTP {response.status})"
            raise ImageError(msg)
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            msg = f"registry {self.host}: the token service answered without a token"
            raise ImageError(msg)
        return f"Bearer {token}"


def _failure(response: http.client.HTTPResponse, what: str, host: str) -> ImageError:
    body = response.read(4096)
    response.close()
    detail = ""
    try:
        errors = json.loads(body).get("errors") or []
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        pass
    reason = {401: "unauthorized", 403: "denied", 404: "not found"}.get(response.status, response.reason)
    message = f"{what} on {host}: HTTP {response.status} {reason}"
    return ImageError(message + (f" ({detail})" if detail else ""))


class RegistryStore(_Store):
    """One repository's manifests and blobs, read through a ``RegistryClient``."""

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self._manifests: dict[str, bytes] = {}  # already fetched (and checked), by digest

    def _fetch_manifest(self, reference: str) -> tuple[bytes, str]:
        response = self.client.get(
            f"/v2/{self.repository}/manifests/{reference}", {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        )
        if response.status != 200:
            raise _failure(response, f"manifest {self.repository}:{reference}", self.client.host)
        data = response.read(_JSON_LIMIT + 1)
        response.close()
        if len(data) > _JSON_LIMIT:
            msg = f"manifest {self.repository}:{reference} is larger than {_JSON_LIMIT} bytes"
            raise ImageError(msg)
        media_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        return data, media_type

    def top(self, reference: RegistryReference) -> dict[str, Any]:
        """The descriptor of what the reference names (checked when it names a digest)."""
        data, media_type = self._fetch_manifest(reference.reference)
        if reference.digest:
            check_digest(data, reference.digest, "manifest")
            digest = reference.digest
        else:
            # A tag names whatever the registry says; what it names from here on is checked.
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self._manifests[digest] = data
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("schemaVersion") != 2:
            msg = f"manifest {reference}: not an OCI or docker schema 2 manifest"
            raise ImageError(msg)
        return {"digest": digest, "size": len(data), "mediaType": document.get("mediaType") or media_type}

    def read_manifest(self, digest: str, size: int | None) -> bytes:
        data = self._manifests.get(digest)
        if data is None:
            data, _ = self._fetch_manifest(digest)
            self._manifests[digest] = data
        return check_digest(data, digest, "manifest", size)

    def _blob_response(self, digest: str, what: str) -> http.client.HTTPResponse:
        parse_digest(digest)
        response = self.client.get(f"/v2/{self.repository}/blobs/{digest}")
        if response.status != 200:
            raise _failure(response, f"{what} {digest} of {self.repository}", self.client.host)
        return response

    def read_blob(self, digest: str, size: int | None, what: str) -> bytes:
        response = self._blob_response(digest, what)
        data = response.read(_JSON_LIMIT + 1)
        response.close()
        if len(data) > _JSON_LIMIT:
            msg = f"{what} {digest} is larger than {_JSON_LIMIT} bytes"
            raise ImageError(msg)
        return check_digest(data, digest, what, size)

    def open_blob(self, digest: str, size: int | None, what: str) -> DigestReader:
        return DigestReader(self._blob_response(digest, what), digest, what, size)

    def open(self, name: str) -> IO[bytes]:
        msg = "a registry is read by digest, not by path"
        raise NotImplementedError(msg)

    def exists(self, name: str) -> bool:
        return False


def open_registry_image(
    reference: str, *, tls_verify: bool, stack: ExitStack
) -> tuple[RegistryStore, list[dict[str, Any]]]:
    """The store and top descriptor of ``docker://...``: for ``layers.image._views_of``."""
    try:
        parsed = parse_reference(reference)
    except ValueError as error:
        msg = f"image {_shown(reference)}: {error}"
        raise ImageError(msg) from None
    client = RegistryClient(
        parsed.host, tls_verify=tls_verify, credentials=find_credentials(parsed.host, parsed.repository)
    )
    store = RegistryStore(client, parsed.repository)
    del stack  # nothing to clean up: every response is closed when read
    return store, [store.top(parsed)]
