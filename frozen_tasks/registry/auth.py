"""Registry authentication: whatever the ``WWW-Authenticate`` challenge asks for.

Anonymous or credentialed Bearer tokens from the realm the challenge names (never a hard-coded
Docker Hub address), or Basic. Tokens are cached per scope and renewed when they expire or the
registry answers 401 again.

Credentials are found the way the docker CLI finds them (cli/config/configfile/file.go
``GetAuthConfig``): in ``$DOCKER_CONFIG/config.json``, ``credHelpers.<host>`` names a credential
helper for that host, else ``credsStore`` one for every host, else ``auths.<host>`` holds them
(``auth``, ``username``/``password``, ``identitytoken``). A helper is run as
``docker-credential-<name> get`` with the server address on stdin (docker-credential-helpers'
client protocol). When docker's file yields nothing, podman's auth.json is read
(``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json`` and
``$XDG_CONFIG_HOME/containers/auth.json``). An identity token is an OAuth2 refresh token, sent to
the token realm as docker's registry client does (POST ``grant_type=refresh_token``).

No secret ever goes into a message, a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..errors import AuthError, RegistryError

_CHALLENGE_PARAM = re.compile(r'\s*([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
# The key docker stores (and asks helpers for) Docker Hub credentials under.
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
_DOCKER_HUB_KEYS = (
    DOCKER_HUB_SERVER,
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "https://registry-1.docker.io",
)
HELPER_PREFIX = "docker-credential-"
HELPER_TIMEOUT = 60  # seconds a credential helper may take (it may ask for a passphrase)
# What a helper prints (and exits non-zero with) when it holds nothing for the server.
HELPER_NOT_FOUND = "credentials not found in native keychain"
TOKEN_USERNAME = "<token>"  # a helper's Username meaning "Secret is an identity token"
CLIENT_ID = "frozen-tasks"  # OAuth2 client_id sent with a refresh token


@dataclass(frozen=True)
class Credentials:
    """What a registry login holds; ``source`` says where it was found (for messages).

    The password and the identity token stay out of ``repr`` and every message.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""

    @property
    def basic(self) -> tuple[str, str] | None:
        """(user, password) for Basic auth, when both are set (as docker requires)."""
        return (self.username, self.password) if self.username and self.password else None

    def describe(self) -> str:
        """Whose credentials these are, without the secret: for error messages."""
        what = "the identity token" if self.identity_token else f"user {self.username!r}"
        return f"{what} from {self.source}" if self.source else what


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge: ``scheme`` (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (or ``Basic realm="…"``)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = value.replace('\\"', '"')
    return Challenge(scheme.lower(), params)


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, default ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker"
    return Path(base) / "config.json"


def podman_auth_paths() -> list[Path]:
    """podman's auth.json files, in the order containers/image reads them.

    ``$REGISTRY_AUTH_FILE`` alone when set; else ``$XDG_RUNTIME_DIR/containers/auth.json``
    and ``$XDG_CONFIG_HOME/containers/auth.json`` (default ``~/.config``).
    """
    if os.environ.get("REGISTRY_AUTH_FILE"):
        return [Path(os.environ["REGISTRY_AUTH_FILE"])]
    paths = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    paths.append(Path(config_home) / "containers" / "auth.json")
    return paths


def server_address(registry: str) -> str:
    """The key docker looks credentials up by: the host, or Docker Hub's legacy index URL."""
    return DOCKER_HUB_SERVER if registry == "docker.io" else registry


def load_credentials(registry: str) -> Credentials | None:
    """Credentials for a registry (``docker.io`` or ``host[:port]``), or None for anonymous.

    The docker config file first (credential helper, credsStore, then ``auths``), then podman's
    auth.json. Raises AuthError for an unreadable file or a failing credential helper.
    """
    found = _from_docker_config(registry)
    for path in podman_auth_paths():
        if found is not None:
            break
        config = _read_config(path, "auth file")
        if config is not None:
            found = _from_auths(config, path, registry)
    return found


def _read_config(path: Path, what: str) -> dict[str, Any] | None:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a JSON error names a position, never the content
        raise AuthError(f"{path}: cannot read {what}: {exc}") from None
    if not isinstance(config, dict):
        raise AuthError(f"{path}: cannot read {what}: not a JSON object")
    return config


def _section(config: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise AuthError(f"{path}: {key!r} must be an object")
    return value


def _from_docker_config(registry: str) -> Credentials | None:
    path = docker_config_path()
    config = _read_config(path, "docker config")
    if config is None:
        return None
    server = server_address(registry)
    helpers = _section(config, "credHelpers", path)
    keys = (server, *_DOCKER_HUB_KEYS) if registry == "docker.io" else (server,)
    for key in keys:
        if helpers.get(key):
            return _from_helper(registry, helpers[key], server, f"credHelpers in {path}")
    if config.get("credsStore"):
        return _from_helper(registry, config["credsStore"], server, f"credsStore in {path}")
    return _from_auths(config, path, registry)


def _hostname(key: str) -> str:
    """docker's ConvertToHostname: an ``auths`` key without scheme and path."""
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    return key.split("/", 1)[0]


def _from_auths(config: dict[str, Any], path: Path, registry: str) -> Credentials | None:
    """An ``auths`` entry: the exact key first, then any key naming the same host."""
    auths = _section(config, "auths", path)
    server = server_address(registry)
    keys = [server, *_DOCKER_HUB_KEYS] if registry == "docker.io" else [server]
    keys += [key for key in auths if key not in keys and _hostname(key) in keys]
    for key in keys:
        if key in auths:
            found = _entry(auths[key], f"{path}: auths[{key!r}]", str(path))
            if found:
                return found
    return None


def _entry(entry: Any, where: str, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        raise AuthError(f"{where} must be an object")
    user, password = entry.get("username") or "", entry.get("password") or ""
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode()
        except (ValueError, TypeError, UnicodeDecodeError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            raise AuthError(f"{where}.auth is not base64 of 'user:password'")
        password = password.strip("\x00")
    token = entry.get("identitytoken") or ""
    if not all(isinstance(v, str) for v in (user, password, token)):
        raise AuthError(f"{where}: username, password and identitytoken must be strings")
    if not token and not (user and password):
        return None
    return Credentials(user, password, token, source)


def _from_helper(registry: str, name: Any, server: str, where: str) -> Credentials | None:
    """Run ``docker-credential-<name> get`` as docker-credential-helpers' client does."""
    program = f"{HELPER_PREFIX}{name}"
    helper = f"credential helper {program} ({where})"
    if not isinstance(name, str):
        raise AuthError(f"{registry}: {where}: the helper name must be a string")
    # Its output is never shown: it may hold the secret. This command shows it to the user.
    retry = f"Run 'printf %s {server} | {program} get' to see what it says"
    try:
        proc = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise AuthError(
            f"{registry}: {helper} is not installed: no {program} on PATH. Install it, or "
            "remove it from the docker config to pull anonymously."
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthError(
            f"{registry}: {helper} gave no answer within {HELPER_TIMEOUT} s. {retry}."
        ) from None
    except OSError as exc:
        raise AuthError(f"{registry}: cannot run {helper}: {exc.strerror}") from None
    if proc.returncode != 0:
        said = {
            proc.stdout.decode(errors="replace").strip(),
            proc.stderr.decode(errors="replace").strip(),
        }
        if HELPER_NOT_FOUND in said:
            return None  # nothing stored for this server: anonymous, as docker does
        status = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"failed with exit status {proc.returncode}"
        )
        raise AuthError(
            f"{registry}: {helper} {status} when asked for the credentials of {server}. {retry}."
        )
    try:
        answer = json.loads(proc.stdout)
        user, secret = answer.get("Username") or "", answer.get("Secret") or ""
        if not isinstance(user, str) or not isinstance(secret, str):
            raise TypeError
    except (ValueError, TypeError, AttributeError):
        raise AuthError(
            f"{registry}: {helper} did not answer with a JSON object "
            f'{{"ServerURL", "Username", "Secret"}} for {server}. {retry}.'
        ) from None
    if not secret:
        return None
    if user == TOKEN_USERNAME:
        return Credentials(identity_token=secret, source=f"credential helper {program}")
    return Credentials(user, secret, source=f"credential helper {program}")


class Authenticator:
    """Answers a registry's challenges for one registry; thread-safe; tokens cached per scope."""

    def __init__(self, registry: str, credentials: Credentials | tuple[str, str] | None) -> None:
        if isinstance(credentials, tuple):
            credentials = Credentials(*credentials)
        self.registry = registry
        self.credentials = credentials
        self._basic_pair = credentials.basic if credentials else None
        # An identity token is an OAuth2 refresh token; a token server may hand out a new one.
        self._refresh_token = credentials.identity_token if credentials else ""
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fetching: dict[str, threading.Lock] = {}  # one token fetch per scope at a time
        self._basic = False

    def header(self, scope: str) -> dict[str, str]:
        """The Authorization header to send for ``scope``, if we hold one still valid."""
        with self._lock:
            if self._basic and self._basic_pair:
                return {"Authorization": _basic(self._basic_pair)}
            token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        return {}

    def answer(self, response: requests.Response, scope: str, session: requests.Session) -> bool:
        """React to a 401: fetch a token or switch to Basic; False when nothing more can help."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        # What the refused request carried: requests sent concurrently are refused together,
        # and only the first answer may fetch; the others retry with what it got.
        sent = response.request.headers.get("Authorization")
        if challenge.scheme == "basic":
            if not self._basic_pair:
                return False
            with self._lock:
                refused = self._basic and sent == _basic(self._basic_pair)
                self._basic = True
            if refused:  # the credentials themselves were refused
                raise AuthError(
                    f"registry {self.registry} refused {self._who()} (HTTP 401). "
                    f"{self._login_hint()}"
                )
            return True
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            return False
        with self._lock:
            scope_lock = self._fetching.setdefault(scope, threading.Lock())
        with scope_lock:
            fresh = self.header(scope).get("Authorization")
            if fresh and fresh != sent:
                return True  # another thread fetched a token for this scope meanwhile
            token, lifetime = self._fetch_token(challenge, scope, session)
            with self._lock:
                # Renew a little early so a token never expires between header() and the request.
                self._tokens[scope] = (token, time.monotonic() + max(lifetime - 10, 1))
        return True

    def _who(self) -> str:
        return self.credentials.describe() if self.credentials else "anonymous access"

    def _login_hint(self) -> str:
        where = "your docker config file"
        if self.credentials and self.credentials.source:
            where = self.credentials.source
        return f"Log in with 'docker login {self.registry}' or check the credentials in {where}."

    def _fetch_token(
        self, challenge: Challenge, scope: str, session: requests.Session
    ) -> tuple[str, float]:
        realm = challenge.params["realm"]
        service = challenge.params.get("service")
        with self._lock:
            refresh_token = self._refresh_token
        try:
            if refresh_token:
                # docker/distribution's registry client (fetchTokenWithOAuth): a POST, and no
                # fallback to GET when the token server has no such endpoint.
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token,
                    "client_id": CLIENT_ID,
                    "service": service or "",
                    "scope": scope,
                }
                reply = session.post(realm, data=form, timeout=(10, 60))
            else:
                params = {"scope": scope}
                if service is not None:
                    params["service"] = service
                reply = session.get(realm, params=params, auth=self._basic_pair, timeout=(10, 60))
        except requests.RequestException as exc:
            raise RegistryError(
                f"{self.registry}: cannot reach its token server {realm}: {exc}"
            ) from None
        with reply:
            return self._token_from(reply, realm, scope, refresh_token)

    def _token_from(
        self, reply: requests.Response, realm: str, scope: str, refresh_token: str
    ) -> tuple[str, float]:
        status = reply.status_code
        if status in (401, 403) or (refresh_token and status == 400):
            raise AuthError(
                f"{self.registry}: the token server {realm} refused {self._who()} for {scope} "
                f"(HTTP {status}). {self._login_hint()}"
            )
        if refresh_token and status in (404, 405):
            raise AuthError(
                f"{self.registry}: the token server {realm} does not take identity tokens "
                f"(OAuth2 POST answered HTTP {status}); {self._who()} cannot be used there. "
                f"Log in with a password instead: 'docker login {self.registry}'."
            )
        if status != 200:
            raise RegistryError(f"{self.registry}: token server {realm} answered HTTP {status}")
        try:
            body = reply.json()
            token = body.get("access_token") or body.get("token")
            lifetime = float(body.get("expires_in") or 60)
        except (ValueError, TypeError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(f"{self.registry}: token server {realm} sent no token")
        renewed = body.get("refresh_token")
        if refresh_token and isinstance(renewed, str) and renewed:
            with self._lock:  # kept in memory only, as docker's client does
                self._refresh_token = renewed
        return token, lifetime


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
