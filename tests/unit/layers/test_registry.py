"""verify --image docker://...: the registry client against a registry run by a thread.

The registry here serves an OCI layout written by the test through the
distribution API the way hosted registries do: bearer tokens from a token
realm that takes the auth file's Basic credentials, blobs redirected to a
storage host (which must never see the credentials). The real registry
(Debian's docker-registry) is exercised by the container tests in
tests/integration/images/test_registry_push.py.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from buildmatrix.layers import ImageError, open_image
from buildmatrix.layers.registry import (
    auth_files,
    find_credentials,
    is_local_host,
    parse_reference,
)
from buildmatrix.model import Matrix
from tests.support.ocifactory import _blob, _manifest, dist, good_layers, good_spec, write_oci_layout
from tests.support.verifying import image_checks, run_verify

USER, PASSWORD = "ci-bot", "s3cr3t-Pa55word-never-printed"
TOKEN = "tok-" + "x" * 40


@dataclass
class Served:
    layout: Path
    repository: str = "dynamo/vllm-runtime"
    require_auth: bool = True
    basic_only: bool = False  # a registry that answers with a Basic challenge (htpasswd)
    seen_on_storage: list[str | None] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    tampered: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes served instead


class _Handler(http.server.BaseHTTPRequestHandler):
    served: ClassVar[Served]
    port: ClassVar[int]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        served = self.served
        if not served.require_auth:
            return True
        header = self.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if served.basic_only:
            if header == basic:
                return True
            self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="test"'})
            return False
        if header == f"Bearer {TOKEN}":
            return True
        scope = f"repository:{served.repository}:pull"
        challenge = (
            f'Bearer realm="http://127.0.0.1:{self.port}/token",service="test-registry",scope="{scope}"'
        )
        self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        return False

    def do_GET(self) -> None:  # noqa: PLR0911 - one return per endpoint
        served = self.served
        path, _, query = self.path.partition("?")
        if path == "/token":
            basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            served.token_requests.append(dict(p.split("=", 1) for p in query.split("&") if "=" in p))
            if self.headers.get("Authorization") != basic:
                self._send(401, b'{"details":"bad credentials"}')
                return
            self._send(200, json.dumps({"token": TOKEN}).encode(), {"Content-Type": "application/json"})
            return
        if path.startswith("/storage/"):
            served.seen_on_storage.append(self.headers.get("Authorization"))
            digest = "sha256:" + path.rsplit("/", 1)[1]
            self._send(200, served.tampered.get(digest) or _blob(served.layout, digest).read_bytes())
            return
        prefix = f"/v2/{served.repository}/"
        if not path.startswith(prefix):
            self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}')
            return
        if not self._authorized():
            return
        kind, _, reference = path[len(prefix) :].partition("/")
        if kind == "manifests":
            index = json.loads((served.layout / "index.json").read_text())
            if reference.startswith("sha256:"):
                digest = reference
                data = _blob(served.layout, digest)
                if not data.is_file():
                    self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                    return
                media_type = json.loads(data.read_text()).get("mediaType", "")
            else:
                tagged = [
                    d
                    for d in index["manifests"]
                    if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == reference
                ]
                if not tagged:
                    self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                    return
                digest, media_type = tagged[0]["digest"], tagged[0]["mediaType"]
            body = served.tampered.get(digest) or _blob(served.layout, digest).read_bytes()
            self._send(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})
            return
        if kind == "blobs":
            # Hosted registries send blobs to storage elsewhere (S3, a CDN): another host.
            location = f"http://localhost:{self.port}/storage/{reference.split(':')[1]}"
            self._send(307, b"", {"Location": location})
            return
        self._send(404)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., tuple[str, Served]]]:
    """Serve an OCI layout; returns ``(host:port, state)``. Credentials in REGISTRY_AUTH_FILE."""
    servers: list[http.server.ThreadingHTTPServer] = []
    auth = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no stray credentials
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)

    def start(served: Served, *, credentials: bool = True) -> tuple[str, Served]:
        handler = type("Handler", (_Handler,), {"served": served})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        handler.port = server.server_address[1]
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host = f"127.0.0.1:{handler.port}"
        entry = {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
        auth.write_text(json.dumps({"auths": {host: entry} if credentials else {}}))
        return host, served

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _two_platforms(tmp_path: Path) -> Path:
    arm = good_layers()
    arm[1] = [e for e in arm[1] if "vllm-0.11.0" not in e.path] + [dist("vllm", "0.11.1")]
    return write_oci_layout(tmp_path / "layout", good_spec(), good_spec(platform="linux/arm64", layers=arm))


def test_every_platform_through_a_bearer_token(
    tmp_path: Path, registry: Callable[..., tuple[str, Served]], matrix: Matrix, cli: Callable[..., Any]
) -> None:
    host, served = registry(Served(_two_platforms(tmp_path)))
    reference = f"docker://{host}/{served.repository}:latest"
    report = run_verify(matrix, images=(reference,))
    checks = [c for c in image_checks(report) if c.subject.startswith(reference)]
    assert {c.subject for c in checks} == {f"{reference} (linux/amd64)", f"{reference} (linux/arm64)"}
    failed = [(c.subject, c.name, c.found) for c in checks if not c.ok]
    assert failed == [(f"{reference} (linux/arm64)", "vllm", "0.11.1")]
    blobs = {c.subject: c.found for c in checks if c.name == "blob digests"}
    assert set(blobs.values()) == {"manifest, config and 2 of 2 layers verified"}
    # The token was bought with the auth file's credentials, for this repository's pull scope,
    # and the storage host the blobs were redirected to never saw any credentials.
    assert served.token_requests[0] == {
        "service": "test-registry",
        "scope": f"repository%3A{served.repository.replace('/', '%2F')}%3Apull",
    }
    assert served.seen_on_storage
    assert set(served.seen_on_storage) == {None}
    # Only one platform, by the CLI; nothing it prints holds the password or the token.
    result = cli("verify", "--image", reference, "--platform", "linux/amd64", "--format", "json")
    # The release's committed `installs` results contradict its glibc claim (unit/installs/test_results.py):
    # that check fails by design; every other check, the image's among them, holds.
    failed_subjects = {c["subject"] for c in json.loads(result.out)["checks"] if not c["ok"]}
    assert all(s.endswith("installs.json") for s in failed_subjects), result.err
    for secret in (PASSWORD, TOKEN, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()):
        assert secret not in result.out + result.err
    subjects = {c["subject"] for c in json.loads(result.out)["checks"] if c["subject"].startswith("docker:")}
    assert subjects == {f"{reference} (linux/amd64)"}


def test_by_digest_and_a_tampered_blob(
    tmp_path: Path, registry: Callable[..., tuple[str, Served]], matrix: Matrix
) -> None:
    layout = write_oci_layout(tmp_path / "layout", good_spec())
    host, served = registry(Served(layout))
    index = json.loads((layout / "index.json").read_text())
    top = index["manifests"][0]["digest"]
    by_digest = f"docker://{host}/{served.repository}@{top}"
    assert all(c.ok for c in image_checks(run_verify(matrix, images=(by_digest,))))

    layer = _manifest(layout)["layers"][-1]["digest"]
    good = _blob(layout, layer).read_bytes()
    served.tampered[layer] = good[:-8] + bytes(8)  # same size, other bytes
    report = run_verify(matrix, images=(by_digest,))
    failed = [c for c in image_checks(report) if not c.ok]
    assert [(c.name, c.expected) for c in failed] == [(f"blob {layer}", layer)]
    assert report.exit_code == 1

    # A registry that answers a digest with another manifest is caught too.
    served.tampered = {
        top: _blob(layout, top).read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":2')
    }
    failed = [c for c in image_checks(run_verify(matrix, images=(by_digest,))) if not c.ok]
    assert [c.name for c in failed] == [f"blob {top}"]


def test_basic_challenge_and_missing_credentials(
    tmp_path: Path, registry: Callable[..., tuple[str, Served]], matrix: Matrix
) -> None:
    layout = write_oci_layout(tmp_path / "layout", good_spec())
    host, served = registry(Served(layout, basic_only=True))
    reference = f"docker://{host}/{served.repository}:latest"
    assert all(c.ok for c in image_checks(run_verify(matrix, images=(reference,))))

    host, served = registry(Served(layout), credentials=False)
    report = run_verify(matrix, images=(f"docker://{host}/{served.repository}:latest",))
    assert report.exit_code == 2
    [error] = [e for e in report.errors if host in e]
    assert "refused a token anonymously" in error
    assert PASSWORD not in error


def test_unknown_tag_and_repository_are_clear_errors(
    tmp_path: Path, registry: Callable[..., tuple[str, Served]]
) -> None:
    layout = write_oci_layout(tmp_path / "layout", good_spec())
    host, served = registry(Served(layout, require_auth=False))
    unknown_tag = r"manifest dynamo/vllm-runtime:nope on .*HTTP 404.*manifest unknown"
    with (
        pytest.raises(ImageError, match=unknown_tag),
        open_image(f"docker://{host}/{served.repository}:nope"),
    ):
        pass
    unknown_repo = f"docker://{host}/other/repo:latest"
    with pytest.raises(ImageError, match=r"HTTP 404 not found.*NAME_UNKNOWN"), open_image(unknown_repo):
        pass
    refused = r"cannot reach registry 127\.0\.0\.1:9 \(http\)"
    with pytest.raises(ImageError, match=refused), open_image("docker://127.0.0.1:9/repo:latest"):
        pass


def test_references_hosts_and_credentials(tmp_path: Path) -> None:
    ref = parse_reference("docker://127.0.0.1:5000/dynamo/vllm-runtime:main-cuda12")
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (
        "127.0.0.1:5000",
        "dynamo/vllm-runtime",
        "main-cuda12",
        None,
    )
    digest = "sha256:" + "a" * 64
    ref = parse_reference(f"docker://ghcr.io/ai-dynamo/vllm:v1@{digest}")
    assert (ref.host, ref.tag, ref.digest, ref.reference) == ("ghcr.io", "v1", digest, digest)
    assert parse_reference("docker://ubuntu:24.04").repository == "library/ubuntu"
    for bad, message in (
        ("docker://user:pw@ghcr.io/x:1", "put credentials in an auth file"),
        ("docker://ghcr.io/UPPER/case", "invalid repository"),
        ("docker://ghcr.io/x@sha256:123", "digest"),
        ("docker://ghcr.io/x:bad tag", "invalid tag"),
    ):
        with pytest.raises(ValueError, match=message) as caught:
            parse_reference(bad)
        assert "pw" not in str(caught.value)
    with pytest.raises(ImageError) as caught, open_image("docker://user:hunter2@ghcr.io/x:1"):
        pass
    assert "hunter2" not in caught.value.message
    assert all(is_local_host(h) for h in ("localhost:5000", "127.0.0.1", "127.8.9.10:80", "[::1]:5000"))
    assert not any(is_local_host(h) for h in ("ghcr.io", "10.0.0.1:5000", "localhost.example.com"))

    env = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(tmp_path / "first.json")}
    files = auth_files(env)
    assert files[0] == tmp_path / "first.json"
    assert files[-1] == tmp_path / ".docker" / "config.json"

    def write(path: Path, auths: dict[str, str]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = {key: {"auth": base64.b64encode(value.encode()).decode()} for key, value in auths.items()}
        path.write_text(json.dumps({"auths": entries}))
        return path

    first = write(tmp_path / "first.json", {"ghcr.io": "org:one", "ghcr.io/ai-dynamo/vllm": "repo:two"})
    docker = write(tmp_path / ".docker" / "config.json", {"ghcr.io": "docker:three", "quay.io": "q:four"})
    assert find_credentials("ghcr.io", "ai-dynamo/vllm", [first, docker]) == ("repo", "two")
    assert find_credentials("ghcr.io", "ai-dynamo/sglang", [first, docker]) == ("org", "one")
    assert find_credentials("quay.io", "x/y", [first, docker]) == ("q", "four")
    assert find_credentials("nvcr.io", "x/y", [first, docker]) is None
    broken = tmp_path / "broken.json"
    broken.write_text('{"auths": {"ghcr.io": {"auth": "' + PASSWORD)
    with pytest.raises(ImageError, match="cannot read the registry credentials") as caught:
        find_credentials("ghcr.io", "x", [broken])
    assert PASSWORD not in caught.value.message


# --------------------------------------------------------------------------- merge sources by digest


def _per_arch_layout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """One layout holding two tags, `main-cuda12-amd64` and `main-cuda12-arm64`."""
    amd = write_oci_layout(tmp_path / "amd", good_spec(), tag="main-cuda12-amd64")
    arm = write_oci_layout(tmp_path / "arm", good_spec(platform="linux/arm64"), tag="main-cuda12-arm64")
    for blob in (arm / "blobs" / "sha256").iterdir():
        (amd / "blobs" / "sha256" / blob.name).write_bytes(blob.read_bytes())
    index = json.loads((amd / "index.json").read_text())
    index["manifests"] += json.loads((arm / "index.json").read_text())["manifests"]
    (amd / "index.json").write_text(json.dumps(index))
    digests = {
        d["annotations"]["org.opencontainers.image.ref.name"].rsplit("-", 1)[1]: d["digest"]
        for d in index["manifests"]
    }
    return amd, digests


def test_merge_sources_are_pinned_by_digest_and_platform(
    tmp_path: Path, registry: Callable[..., tuple[str, Served]]
) -> None:
    from buildmatrix.errors import UsageError
    from buildmatrix.images import BuildahEngine, MergeStep
    from buildmatrix.images.merge import parse_digest_flags, pin_merge_sources

    layout, digests = _per_arch_layout(tmp_path)
    host, served = registry(Served(layout))
    repository = f"{host}/{served.repository}"
    step = MergeStep(
        f"{repository}:main-cuda12",
        (f"{repository}:main-cuda12-amd64", f"{repository}:main-cuda12-arm64"),
        ("linux/amd64", "linux/arm64"),
    )
    pinned = pin_merge_sources(step, {})
    assert pinned.sources == (f"{repository}@{digests['amd64']}", f"{repository}@{digests['arm64']}")
    given = parse_digest_flags([f"linux/arm64={digests['arm64']}"], step.platforms)
    assert pin_merge_sources(step, given).sources == pinned.sources

    commands = BuildahEngine(tmp_path, tmp_path / "digests").merge_commands(pinned)
    assert commands[1] == [
        "buildah", "manifest", "add", "--all", "--tls-verify=false", step.tag, f"docker://{pinned.sources[0]}"
    ]  # fmt: skip
    assert commands[-1] == [
        "buildah", "manifest", "push", "--all", "--tls-verify=false",
        "--digestfile", str(tmp_path / "digests" / "merge-vllm-runtime-main-cuda12.digest"),
        step.tag, f"docker://{step.tag}",
    ]  # fmt: skip

    # The arm64 digest given for amd64 (a swapped CI output) stops the merge, naming it.
    swapped = {"linux/amd64": digests["arm64"]}
    with pytest.raises(UsageError, match=r"holds linux/arm64, not only linux/amd64"):
        pin_merge_sources(step, swapped)
    missing = {"linux/amd64": "sha256:" + "0" * 64}
    with pytest.raises(ImageError, match="HTTP 404"):
        pin_merge_sources(step, missing)
    for bad, message in (
        (["linux/amd64"], "OS/ARCH=DIGEST"),
        (["linux/amd64=sha256:12"], "digest"),
        (["linux/s390x=" + digests["arm64"]], "not a platform of the merge"),
    ):
        with pytest.raises(UsageError, match=message):
            parse_digest_flags(bad, step.platforms)


def test_merge_dry_run_shows_the_given_digests(cli: Callable[..., Any]) -> None:
    digest = "sha256:" + "a" * 64
    result = cli(
        "images", "vllm", "--merge", "--dry-run", "--engine", "buildah", "--tag-prefix", "127.0.0.1:5000/d",
        "--digest", f"linux/arm64={digest}", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    adds = [c for c in json.loads(result.out)["commands"] if c.startswith("buildah manifest add")]
    assert adds == [
        "buildah manifest add --all --tls-verify=false 127.0.0.1:5000/d/vllm-runtime:main-cuda12 "
        "docker://127.0.0.1:5000/d/vllm-runtime:main-cuda12-amd64",
        "buildah manifest add --all --tls-verify=false 127.0.0.1:5000/d/vllm-runtime:main-cuda12 "
        f"docker://127.0.0.1:5000/d/vllm-runtime@{digest}",
    ]
    misplaced = cli("images", "vllm", "--dry-run", "--digest", f"linux/arm64={digest}")
    assert misplaced.code == 2
    assert "--digest names the per-arch images of a --merge" in misplaced.err


def test_tls_is_required_off_localhost_unless_waived(
    tmp_path: Path, registry: Callable[..., tuple[str, Served]]
) -> None:
    from buildmatrix.layers.registry import RegistryClient

    assert RegistryClient("ghcr.io").scheme == "https"
    assert RegistryClient("127.0.0.1:5000").scheme == "http"
    assert RegistryClient("localhost:5000").scheme == "http"
    layout = write_oci_layout(tmp_path / "layout", good_spec())
    host, served = registry(Served(layout, require_auth=False))
    path = f"/v2/{served.repository}/manifests/latest"
    # The registry speaks plain HTTP. Spoken to as a remote host is (over HTTPS), the TLS
    # handshake fails and the message says how to waive it ...
    remote = RegistryClient(host)
    remote.scheme = "https"
    with pytest.raises(ImageError, match=r"TLS failed .*--tls-verify=false"):
        remote.get(path)
    # ... and with --tls-verify=false the client falls back to plain HTTP, as skopeo does.
    waived = RegistryClient(host, tls_verify=False)
    waived.scheme, waived._plain_http_fallback = "https", True
    response = waived.get(path)
    assert response.status == 200
    response.read()
    response.close()
    assert waived.scheme == "http"
