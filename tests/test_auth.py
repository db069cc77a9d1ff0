"""Registry authentication against the real token server and htpasswd registry.

Anonymous and credentialed Bearer tokens, Basic, token caching per scope, no credentials kept
on disk, and no Authorization header sent to another host on a redirect.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from support.client import registry_session
from support.frozen import Project
from support.images import PushedImage, busybox_layer, push_hello_image, push_image
from support.registry import BASIC_USERS, Registry

USER = "alice"
PASSWORD = BASIC_USERS[USER]
AUTH_B64 = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _alice() -> requests.Session:
    return registry_session((USER, PASSWORD))


def _freeze(tmp_path: Path, refs: list[str], login: str | None = None) -> Project:
    project = Project(tmp_path / "project")
    project.write_images(refs, platform="linux/amd64")
    if login is not None:
        project.login(login, USER, PASSWORD)
    return project


def _repo_tags(project: Project) -> list[list[str]]:
    manifest = json.loads((project.output / "manifest.json").read_text())
    return [entry["RepoTags"] for entry in manifest]


def _failure_text(result: Any) -> str:
    assert result.returncode != 0, result.stdout
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    return text


def _message_lines(text: str, needle: str) -> list[str]:
    """The lines of doit's output holding `needle`: each failed task's message is one line
    (one per image that failed, as images are resolved concurrently)."""
    lines = [line for line in text.splitlines() if needle in line]
    assert lines, text
    return lines


def _scopes(requests: list[Any]) -> Counter[str]:
    return Counter(scope for r in requests for scope in r.query.get("scope", []))


# -- Bearer ----------------------------------------------------------------------------------


def test_anonymous_bearer_pull(token_registry: Registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None
    image = push_hello_image(token_registry.url, "pub/hello", "1", session=_alice())
    before = len(server.requests)
    project = _freeze(tmp_path, [f"{token_registry.host}/pub/hello:1"])

    project.doit("frozen")

    new = server.requests[before:]
    assert new, "the token server was asked"
    assert not any(r.authorization for r in new), "anonymous: no credentials sent"
    assert _scopes(new) == {"repository:pub/hello:pull": 1}
    assert _repo_tags(project) == [[f"{token_registry.host}/pub/hello:1"]]
    entry = json.loads((project.output / "manifest.json").read_text())[0]
    assert image.config_digest.removeprefix("sha256:") in entry["Config"]


def test_private_bearer_needs_login(token_registry: Registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None
    host = token_registry.host
    push_hello_image(token_registry.url, "private/hello", "1", session=_alice())
    project = _freeze(tmp_path, [f"{host}/private/hello:1"])

    text = _failure_text(project.doit("frozen", check=False))
    for line in _message_lines(text, "docker login"):
        assert host in line and f"'docker login {host}'" in line
    assert not (project.output / "manifest.json").exists()

    # Wrong password: the token server refuses, and the message says whom.
    project.docker_config.joinpath("config.json").write_text(json.dumps(
        {"auths": {host: {"auth": base64.b64encode(b"alice:wrong").decode()}}}))
    text = _failure_text(project.doit("frozen", check=False))
    for line in _message_lines(text, "refused"):
        assert host in line and "'alice'" in line and "docker login" in line

    project.login(host, USER, PASSWORD)
    before = len(server.requests)
    project.doit("frozen")
    new = server.requests[before:]
    assert new and all(r.authorization for r in new), new
    assert _scopes(new) == {"repository:private/hello:pull": 1}
    assert _repo_tags(project) == [[f"{host}/private/hello:1"]]


def test_tokens_cached_per_scope(token_registry: Registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None
    host, alice = token_registry.host, _alice()
    for tag in ("a", "b", "c"):
        push_image(token_registry.url, "pub/multi", tag, [busybox_layer()],
                   config_overrides={"Cmd": ["/bin/echo", f"multi {tag}"]}, session=alice)
    push_hello_image(token_registry.url, "pub/other", "1", session=alice)
    project = _freeze(tmp_path, [f"{host}/pub/multi:{t}" for t in "abc"] + [f"{host}/pub/other:1"])
    before_tokens, before_log = len(server.requests), len(token_registry.request_log())

    project.doit("frozen")

    log = token_registry.request_log()[before_log:]
    multi = [line for line in log if "/v2/pub/multi/" in line]
    # 3 manifests + 3 configs + the shared layer (+ the first, unauthenticated try).
    assert len(multi) >= 7, log
    assert _scopes(server.requests[before_tokens:]) == {
        "repository:pub/multi:pull": 1,
        "repository:pub/other:pull": 1,
    }
    assert len(_repo_tags(project)) == 4


# -- Basic -----------------------------------------------------------------------------------


def test_basic_registry(basic_registry: Registry, tmp_path: Path) -> None:
    host, alice = basic_registry.host, _alice()
    refs = []
    for tag in ("a", "b", "c"):  # resolved concurrently: all refused at first, then retried
        push_image(basic_registry.url, "team/hello", tag, [busybox_layer()],
                   config_overrides={"Cmd": ["/bin/echo", f"basic {tag}"]}, session=alice)
        refs.append(f"{host}/team/hello:{tag}")
    project = _freeze(tmp_path, refs)

    text = _failure_text(project.doit("frozen", check=False))
    for line in _message_lines(text, "docker login"):
        assert host in line and f"'docker login {host}'" in line

    project.login(host, USER, PASSWORD)
    project.doit("frozen")
    assert sorted(_repo_tags(project)) == [[ref] for ref in refs]


# -- nothing secret on disk ------------------------------------------------------------------


def _files_holding(root: Path, secrets: list[str], skip: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_relative_to(skip):
            continue
        data = path.read_bytes()
        found += [f"{path.relative_to(root)}: {s[:12]}…" for s in secrets if s.encode() in data]
    return found


@pytest.mark.parametrize("kind", ["token", "basic"])
def test_credentials_never_stored(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry: Registry = request.getfixturevalue(f"{kind}_registry")
    repo = "private/hello" if kind == "token" else "team/hello"
    push_hello_image(registry.url, repo, "1", session=_alice())
    issued: list[str] = []
    if registry.token_server is not None:
        issue = registry.token_server.issue

        def recording_issue(*args: Any) -> str:
            issued.append(issue(*args))
            return issued[-1]

        monkeypatch.setattr(registry.token_server, "issue", recording_issue)
    project = _freeze(tmp_path, [f"{registry.host}/{repo}:1"], login=registry.host)

    project.doit("frozen")
    project.doit("frozen")  # a second run reads (and rewrites) the doit state

    state = project.cache / "state"
    assert state.is_dir() and project.output.joinpath("manifest.json").is_file()
    assert kind == "basic" or issued, "tokens were issued"
    # Everything the project holds but the docker config: output, cache, state, doit database.
    secrets = [PASSWORD, AUTH_B64, *issued]
    assert _files_holding(project.root, secrets, skip=project.docker_config) == []


# -- redirects -------------------------------------------------------------------------------


class _Server:
    """A ThreadingHTTPServer on `address` whose GETs go to `handle(path, headers)`."""

    def __init__(self, address: str, handle: Any) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                status, headers, body = handle(self.path, self.headers)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        self.host = f"{address}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


Redirecting = tuple[_Server, _Server, PushedImage, list[tuple[str, str | None]]]


@pytest.fixture
def redirecting_registry(registry: Registry) -> Iterator[Redirecting]:
    """A Basic-auth registry on 127.0.0.1 serving hello's manifest, redirecting (307) every
    blob GET to a storage server on 127.0.0.2 (as S3-backed registries do); yields both
    servers, the image, and the storage server's (path, Authorization) log."""
    image = push_hello_image(registry.url, "redirect/hello", "1")
    blobs = {image.config_digest: image.config_bytes}
    blobs.update({layer.digest: layer.blob for layer in image.layers})
    storage_log: list[tuple[str, str | None]] = []

    def storage(path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        storage_log.append((path, headers.get("Authorization")))
        digest = path.rsplit("/", 1)[-1]
        if digest not in blobs:
            return 404, {}, b""
        return 200, {"Content-Type": "application/octet-stream"}, blobs[digest]

    store = _Server("127.0.0.2", storage)

    def front(path: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        if headers.get("Authorization") != f"Basic {AUTH_B64}":
            return 401, {"WWW-Authenticate": 'Basic realm="redirect-test"'}, b"{}"
        prefix = "/v2/redirect/hello/"
        if path in (f"{prefix}manifests/1", f"{prefix}manifests/{image.manifest_digest}"):
            return 200, {"Content-Type": image.media_type,
                         "Docker-Content-Digest": image.manifest_digest}, image.manifest_bytes
        if path.startswith(f"{prefix}blobs/"):
            digest = path.rsplit("/", 1)[-1]
            return 307, {"Location": f"http://{store.host}/storage/{digest}"}, b""
        return 404, {"Content-Type": "application/json"}, b'{"errors": []}'

    api = _Server("127.0.0.1", front)
    try:
        yield api, store, image, storage_log
    finally:
        api.stop()
        store.stop()


def test_authorization_not_sent_to_redirect_host(
    redirecting_registry: Redirecting, tmp_path: Path
) -> None:
    api, _, image, storage_log = redirecting_registry
    project = _freeze(tmp_path, [f"{api.host}/redirect/hello:1"], login=api.host)

    project.doit("frozen")

    fetched = sorted(path.rsplit("/", 1)[-1] for path, _ in storage_log)
    assert fetched == sorted([image.config_digest, *image.layer_digests])
    assert [auth for _, auth in storage_log] == [None] * len(storage_log)
    assert _repo_tags(project) == [[f"{api.host}/redirect/hello:1"]]


def test_token_renewed_on_expiry_and_on_401(token_registry: Registry, tmp_path: Path) -> None:
    """An expired token is not sent; a token the registry refuses is replaced by a new one."""
    from frozen_tasks.registry.client import RegistryClient
    from frozen_tasks.store import Store

    image = push_hello_image(token_registry.url, "pub/renew", "1",
                             session=registry_session(("alice", "secret")))
    client = RegistryClient(token_registry.host, token_registry.url)
    scope = "repository:pub/renew:pull"
    server = token_registry.token_server
    before = len(server.requests)
    client.get_manifest("pub/renew", image.manifest_digest)
    assert len(server.requests) == before + 1 and client.auth.header(scope)

    token, _ = client.auth._tokens[scope]
    client.auth._tokens[scope] = (token, 0.0)  # as if its lifetime had run out
    assert client.auth.header(scope) == {}, "an expired token is not sent"
    client.get_manifest("pub/renew", image.manifest_digest)
    assert len(server.requests) == before + 2

    client.auth._tokens[scope] = ("not-a-token", float("inf"))  # the registry will refuse it
    store = Store(tmp_path / "cache")
    client.fetch_blob("pub/renew", image.config_digest, len(image.config_bytes), store)
    assert store.has(image.config_digest)
    assert len(server.requests) == before + 3, "renewed once after the 401"
