"""Where credentials come from, as docker finds them: credential helpers (credHelpers,
credsStore), auths entries (auth, identitytoken), and podman's auth.json.

A real helper program (`docker-credential-frozentest`, a script on PATH) answers from a JSON file
and logs what it was asked; pulls go to the real token-auth and htpasswd registries.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from support.client import registry_session
from support.frozen import Project
from support.images import push_hello_image
from support.registry import BASIC_USERS, Registry
from support.tokenserver import SERVICE

from frozen_tasks.registry.auth import DOCKER_HUB_SERVER, Credentials, load_credentials

USER = "alice"
PASSWORD = BASIC_USERS[USER]
RIGHT = {"Username": USER, "Secret": PASSWORD}
WRONG = {"Username": USER, "Secret": "not-the-password"}
# Secrets the failure tests plant; none may show up in any output.
LEAK = "leaky-secret-7f3a9c"
REFRESH = "refresh-token-5e1d42"

_HELPER = """\
#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
here = os.path.dirname(os.path.abspath(sys.argv[0]))
server = sys.stdin.read()
with open(os.path.join(here, name + ".log"), "a") as log:
    log.write(json.dumps([sys.argv[1:], server]) + "\\n")
with open(os.path.join(here, name + ".json")) as f:
    state = json.load(f)
mode = state.get("mode", "answer")
if mode == "crash":
    print("keychain exploded while reading " + state["secret"])
    print("Traceback: password=" + state["secret"], file=sys.stderr)
    sys.exit(3)
if mode == "garbage":
    print("not json, but " + state["secret"])
    sys.exit(0)
entry = state.get("creds", {{}}).get(server)
if sys.argv[1:] != ["get"] or entry is None:
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps({{"ServerURL": server, **entry}}))
"""


class Helpers:
    """`docker-credential-<name>` scripts in one bin directory put first on PATH."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir

    def set(self, name: str, creds: dict[str, dict[str, str]] | None = None, **state: Any) -> None:
        """Install helper `name` answering `creds` (server URL → Username/Secret)."""
        program = self.bin / f"docker-credential-{name}"
        program.write_text(_HELPER.format(python=sys.executable))
        program.chmod(0o755)
        (self.bin / f"{program.name}.json").write_text(json.dumps({"creds": creds or {}, **state}))

    def asked(self, name: str) -> list[tuple[list[str], str]]:
        """(arguments, stdin) of each run of helper `name`."""
        log = self.bin / f"docker-credential-{name}.log"
        if not log.exists():
            return []
        return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    return Helpers(bin_dir)


@pytest.fixture(autouse=True)
def _no_user_auth_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """podman's auth.json lookups see only what a test writes (Project.env copies os.environ)."""
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def _project(root: Path, ref: str, config: dict[str, Any] | None = None) -> Project:
    project = Project(root)
    project.write_images([ref], platform="linux/amd64")
    if config is not None:
        (project.docker_config / "config.json").write_text(json.dumps(config))
    return project


def _pulled(project: Project, ref: str) -> None:
    project.doit("frozen")
    manifest = json.loads((project.output / "manifest.json").read_text())
    assert [entry["RepoTags"] for entry in manifest] == [[ref]]


def _failure_text(result: Any, *secrets: str) -> str:
    assert result.returncode != 0, result.stdout
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    for secret in (PASSWORD, LEAK, REFRESH, *secrets):
        assert secret not in text, text
    return text


def _lines(text: str, needle: str) -> list[str]:
    lines = [line for line in text.splitlines() if needle in line]
    assert lines, text
    return lines


def _alice() -> requests.Session:
    return registry_session((USER, PASSWORD))


def _private(registry: Registry, repo: str = "private/hello") -> str:
    """Push hello to `repo` (as alice); its reference."""
    push_hello_image(registry.url, repo, "1", session=_alice())
    return f"{registry.host}/{repo}:1"


# -- the helper protocol, in-process ---------------------------------------------------------


def test_helper_protocol(
    helpers: Helpers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`get` with the server address on stdin: Docker Hub's legacy index URL, else the host;
    Username "<token>" makes Secret an identity token; "not found" means no credentials."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    (tmp_path / "dc").mkdir()
    (tmp_path / "dc" / "config.json").write_text(json.dumps({"credsStore": "frozentest"}))
    helpers.set("frozentest", {
        DOCKER_HUB_SERVER: {"Username": "bob", "Secret": LEAK},
        "127.0.0.1:5000": {"Username": "<token>", "Secret": REFRESH},
    })

    hub = load_credentials("docker.io")
    assert hub == Credentials("bob", LEAK, source="credential helper docker-credential-frozentest")
    assert LEAK not in repr(hub) and LEAK not in hub.describe()
    token = load_credentials("127.0.0.1:5000")
    assert token is not None and token.identity_token == REFRESH and token.basic is None
    assert REFRESH not in repr(token) and "identity token" in token.describe()
    assert load_credentials("127.0.0.1:5001") is None
    assert helpers.asked("frozentest") == [
        (["get"], DOCKER_HUB_SERVER), (["get"], "127.0.0.1:5000"), (["get"], "127.0.0.1:5001")
    ]


# -- credHelpers, credsStore and their precedence --------------------------------------------


def test_cred_helper_for_host(
    token_registry: Registry, helpers: Helpers, tmp_path: Path
) -> None:
    server = token_registry.token_server
    assert server is not None
    host, ref = token_registry.host, _private(token_registry)
    helpers.set("frozentest", {host: RIGHT})
    config = {"auths": {host: {}}, "credHelpers": {host: "frozentest"}}
    project = _project(tmp_path / "p", ref, config)
    before = len(server.requests)

    _pulled(project, ref)

    new = server.requests[before:]
    assert new and all(r.authorization and r.method == "GET" for r in new), new
    assert {stdin for _, stdin in helpers.asked("frozentest")} == {host}


def test_creds_store(basic_registry: Registry, helpers: Helpers, tmp_path: Path) -> None:
    host, ref = basic_registry.host, _private(basic_registry, "team/hello")
    helpers.set("frozentest", {host: RIGHT})
    project = _project(tmp_path / "p", ref, {"auths": {host: {}}, "credsStore": "frozentest"})

    _pulled(project, ref)

    assert helpers.asked("frozentest") and all(
        args == ["get"] and stdin == host for args, stdin in helpers.asked("frozentest"))


def test_precedence(basic_registry: Registry, helpers: Helpers, tmp_path: Path) -> None:
    """credHelpers[host] > credsStore > auths: each pull works only with the winner's answer."""
    host, ref = basic_registry.host, _private(basic_registry, "team/hello")
    wrong_auths = {host: _auth(USER, "wrong")}

    # credHelpers[host] wins over credsStore and auths; the store is not even asked.
    helpers.set("frozentest", {host: RIGHT})
    helpers.set("othertest", {host: WRONG})
    _pulled(_project(tmp_path / "a", ref, {
        "auths": wrong_auths, "credsStore": "othertest", "credHelpers": {host: "frozentest"}}), ref)
    assert helpers.asked("othertest") == []

    # credsStore wins over auths.
    helpers.set("othertest", {host: RIGHT})
    _pulled(_project(tmp_path / "b", ref, {"auths": wrong_auths, "credsStore": "othertest"}), ref)
    assert helpers.asked("othertest")

    # A helper for another host is not used for this one: auths it is.
    asked = len(helpers.asked("frozentest"))
    _pulled(_project(tmp_path / "c", ref, {
        "auths": {host: _auth(USER, PASSWORD)}, "credHelpers": {"example.com": "frozentest"}}), ref)
    assert len(helpers.asked("frozentest")) == asked

    # And the winner's wrong answer is not made up for by the others: refused.
    helpers.set("frozentest", {host: WRONG})
    project = _project(tmp_path / "d", ref, {
        "auths": {host: _auth(USER, PASSWORD)}, "credHelpers": {host: "frozentest"}})
    text = _failure_text(project.doit("frozen", check=False), "not-the-password")
    for line in _lines(text, "refused"):
        assert "user 'alice' from credential helper docker-credential-frozentest" in line
        assert f"'docker login {host}'" in line


def test_helper_not_found_means_anonymous(
    token_registry: Registry, helpers: Helpers, tmp_path: Path
) -> None:
    server = token_registry.token_server
    assert server is not None
    host = token_registry.host
    push_hello_image(token_registry.url, "pub/hello", "1", session=_alice())
    private = _private(token_registry)
    helpers.set("frozentest", {})  # holds nothing: "credentials not found in native keychain"
    config = {"auths": {host: {}}, "credsStore": "frozentest"}

    before = len(server.requests)
    _pulled(_project(tmp_path / "pub", f"{host}/pub/hello:1", config), f"{host}/pub/hello:1")
    new = server.requests[before:]
    assert new and not any(r.authorization for r in new), "anonymous token requests"

    project = _project(tmp_path / "private", private, config)
    text = _failure_text(project.doit("frozen", check=False))
    for line in _lines(text, "docker login"):
        assert host in line and f"'docker login {host}'" in line
    assert "frozentest" not in text, "not found is no helper failure"
    assert helpers.asked("frozentest") and all(
        stdin == host for _, stdin in helpers.asked("frozentest"))


@pytest.mark.parametrize("mode", ["crash", "garbage", "missing"])
def test_helper_failure_is_clear(
    mode: str, token_registry: Registry, helpers: Helpers, tmp_path: Path
) -> None:
    """A helper that fails, answers nonsense or is not installed: an error naming it, where it
    is configured and for which server, with none of what it printed (it may be the secret)."""
    host = token_registry.host
    push_hello_image(token_registry.url, "pub/hello", "1", session=_alice())
    ref = f"{host}/pub/hello:1"
    name = "notinstalled" if mode == "missing" else "frozentest"
    helpers.set("frozentest", {host: RIGHT}, mode=mode, secret=LEAK)
    project = _project(tmp_path / "p", ref, {"credHelpers": {host: name}})

    text = _failure_text(project.doit("frozen", check=False))

    for line in _lines(text, f"docker-credential-{name}"):
        assert host in line and "credHelpers" in line and str(project.docker_config) in line
        if mode == "missing":
            assert "PATH" in line
        else:
            assert f"printf %s {host} | docker-credential-{name} get" in line
    assert not project.output.joinpath("manifest.json").exists()


# -- identity tokens -------------------------------------------------------------------------


def _files_holding(root: Path, secrets: list[str], skip: Path) -> list[str]:
    return [f"{path.relative_to(root)}" for path in sorted(root.rglob("*"))
            if path.is_file() and not path.is_relative_to(skip)
            and any(s.encode() in path.read_bytes() for s in secrets)]


@pytest.mark.parametrize("where", ["auths", "helper"])
def test_identity_token(
    where: str, token_registry: Registry, helpers: Helpers, tmp_path: Path
) -> None:
    """An identity token is a refresh token: POSTed to the realm (grant_type=refresh_token)."""
    server = token_registry.token_server
    assert server is not None
    server.refresh_tokens[REFRESH] = USER
    host, ref = token_registry.host, _private(token_registry)
    if where == "auths":
        config: dict[str, Any] = {"auths": {host: {"identitytoken": REFRESH}}}
    else:
        helpers.set("frozentest", {host: {"Username": "<token>", "Secret": REFRESH}})
        config = {"auths": {host: {}}, "credHelpers": {host: "frozentest"}}
    project = _project(tmp_path / "p", ref, config)
    before = len(server.requests)

    _pulled(project, ref)

    new = server.requests[before:]
    assert new and all(r.method == "POST" and not r.authorization for r in new), new
    form = {key: values for key, values in new[0].query.items() if key != "refresh_token"}
    assert form == {"grant_type": ["refresh_token"], "client_id": ["frozen-tasks"],
                    "service": [SERVICE], "scope": ["repository:private/hello:pull"]}
    assert new[0].query["refresh_token"] == [REFRESH]
    assert _files_holding(project.root, [REFRESH], skip=project.docker_config) == []


def test_identity_token_refused(token_registry: Registry, tmp_path: Path) -> None:
    host, ref = token_registry.host, _private(token_registry)
    project = _project(tmp_path / "p", ref, {"auths": {host: {"identitytoken": REFRESH}}})

    text = _failure_text(project.doit("frozen", check=False))

    for line in _lines(text, "refused"):
        assert "identity token" in line and str(project.docker_config) in line
        assert f"'docker login {host}'" in line


# -- podman's auth.json ----------------------------------------------------------------------


def test_registry_auth_file(
    basic_registry: Registry, helpers: Helpers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, ref = basic_registry.host, _private(basic_registry, "team/hello")
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {host: _auth(USER, PASSWORD)}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))

    # No docker config at all: REGISTRY_AUTH_FILE's entry.
    _pulled(_project(tmp_path / "a", ref), ref)

    # The docker config's credsStore holds nothing for the host: still REGISTRY_AUTH_FILE's.
    helpers.set("frozentest", {})
    _pulled(_project(tmp_path / "b", ref, {"credsStore": "frozentest"}), ref)
    assert helpers.asked("frozentest")

    # The docker config's entry comes first.
    auth_file.write_text(json.dumps({"auths": {host: _auth(USER, "wrong")}}))
    _pulled(_project(tmp_path / "c", ref, {"auths": {f"https://{host}": _auth(USER, PASSWORD)}}),
            ref)
    text = _failure_text(_project(tmp_path / "d", ref).doit("frozen", check=False), "wrong")
    for line in _lines(text, "refused"):
        assert f"user 'alice' from {auth_file}" in line and f"'docker login {host}'" in line


def test_podman_default_auth_file(basic_registry: Registry, tmp_path: Path) -> None:
    """Without REGISTRY_AUTH_FILE: $XDG_RUNTIME_DIR/containers/auth.json (podman login's)."""
    host, ref = basic_registry.host, _private(basic_registry, "team/hello")
    auth_file = tmp_path / "runtime" / "containers" / "auth.json"
    auth_file.parent.mkdir(parents=True)
    auth_file.write_text(json.dumps({"auths": {host: _auth(USER, PASSWORD)}}))

    _pulled(_project(tmp_path / "p", ref), ref)


def test_netrc_is_not_consulted(
    token_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would send a ~/.netrc entry's Basic auth in place of the registry's token;
    credentials come from the docker config only."""
    host, ref = token_registry.host, _private(token_registry)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host.split(':')[0]} login {USER} password {LEAK}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))

    _pulled(_project(tmp_path / "p", ref, {"auths": {host: _auth(USER, PASSWORD)}}), ref)
