"""Registry authentication: whatever the ``WWW-Authenticate`` challenge asks for.

Anonymous or credentialed Bearer tokens from the realm the challenge names (never a hard-coded
Docker Hub address), or Basic. Credentials come from the docker config file. Tokens are cached
per scope and renewed when they expire or the registry answers 401 again.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import AuthError, RegistryError

_CHALLENGE_PARAM = re.compile(r'\s*([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')
_DOCKER_HUB_KEYS = (
    "https://index.docker.io/v1/",
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "https://registry-1.docker.io",
)


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


def load_credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) for a registry from the docker config file's ``auths``, or None."""
    path = docker_config_path()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AuthError(f"{path}: cannot read docker config: {exc}") from None
    auths = config.get("auths") or {}
    keys = (registry, f"https://{registry}", f"http://{registry}")
    if registry == "docker.io":
        keys += _DOCKER_HUB_KEYS
    for key in keys:
        entry = auths.get(key) or auths.get(key.rstrip("/"))
        if entry and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise AuthError(
                    f"{path}: auths[{key!r}].auth is not base64 of 'user:password'"
                ) from None
            return user, password
    return None


class Authenticator:
    """Answers a registry's challenges for one registry; thread-safe; tokens cached per scope."""

    def __init__(self, registry: str, credentials: tuple[str, str] | None) -> None:
        self.registry = registry
        self.credentials = credentials
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._fetching: dict[str, threading.Lock] = {}  # one token fetch per scope at a time
        self._basic = False

    def header(self, scope: str) -> dict[str, str]:
        """The Authorization header to send for ``scope``, if we hold one still valid."""
        with self._lock:
            if self._basic and self.credentials:
                return {"Authorization": _basic(self.credentials)}
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
            if not self.credentials:
                return False
            with self._lock:
                if self._basic and sent == _basic(self.credentials):
                    return False  # the credentials themselves were refused
                self._basic = True
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

    def _fetch_token(
        self, challenge: Challenge, scope: str, session: requests.Session
    ) -> tuple[str, float]:
        params = {"scope": scope}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        realm = challenge.params["realm"]
        try:
            reply = session.get(realm, params=params, auth=self.credentials, timeout=(10, 60))
        except requests.RequestException as exc:
            raise RegistryError(
                f"{self.registry}: cannot reach its token server {realm}: {exc}"
            ) from None
        if reply.status_code in (401, 403):
            who = f"user {self.credentials[0]!r}" if self.credentials else "anonymous access"
            raise AuthError(
                f"{self.registry}: the token server {realm} refused {who} for {scope} "
                f"(HTTP {reply.status_code}). Log in with 'docker login {self.registry}' or "
                "check the credentials in your docker config file."
            )
        if reply.status_code != 200:
            raise RegistryError(
                f"{self.registry}: token server {realm} answered HTTP {reply.status_code}"
            )
        try:
            body = reply.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not token:
            raise RegistryError(f"{self.registry}: token server {realm} sent no token")
        return token, float(body.get("expires_in") or 60)


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
