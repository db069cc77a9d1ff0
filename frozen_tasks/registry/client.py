"""Registry API v2 client: manifests (verified), blobs (streamed into the store, verified)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from .. import manifest as mf
from ..errors import AuthError, DigestMismatchError, RegistryError
from ..schema1 import schema1_digest, schema1_payload
from ..store import CHUNK, Store
from .auth import Authenticator, load_credentials

MAX_MANIFEST_BYTES = 4 << 20  # a manifest larger than this is refused, not buffered
ATTEMPTS = 4  # tries per request on connection errors, timeouts, 408, 429 and 5xx
TIMEOUT = (15, 60)  # seconds: to connect, and without a single byte while reading
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Fetched:
    """A manifest as received: raw bytes, media type, and its verified ``sha256:`` digest."""

    raw: bytes
    media_type: str
    digest: str

    @property
    def content(self) -> bytes:
        """The bytes the digest covers: all of them, but a signed schema1's payload only."""
        return schema1_payload(self.raw) if self.media_type in mf.SCHEMA1_TYPES else self.raw


class RegistryClient:
    """One registry, addressed as users name it (``docker.io``) and reached at ``base_url``."""

    def __init__(
        self, registry: str, base_url: str, credentials: tuple[str, str] | None = None
    ) -> None:
        self.registry = registry
        self.base_url = base_url.rstrip("/")
        self.auth = Authenticator(registry, credentials)
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """A session per thread: connections are reused, and no cookie jar is shared."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _request(
        self, method: str, repo: str, path: str, headers: dict[str, str], what: str
    ) -> requests.Response:
        """Send with auth and retries; return any final response (the caller checks status)."""
        scope = f"repository:{repo}:pull"
        url = f"{self.base_url}/v2/{repo}/{path}"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self._send(method, url, scope, headers)
            except requests.RequestException as exc:
                if attempt == ATTEMPTS:
                    hint = "Check the network and the registry address."
                    if isinstance(exc, requests.exceptions.SSLError):
                        hint = (
                            f'If {self.registry} serves plain HTTP, set "registries": '
                            f'{{"{self.registry}": {{"insecure": true}}}} in images.json.'
                        )
                    raise RegistryError(
                        f"{what}: cannot reach registry {self.registry} at {self.base_url}: "
                        f"{_reason(exc)}. {hint}"
                    ) from None
            else:
                if response.status_code not in _RETRY_STATUS or attempt == ATTEMPTS:
                    return response
                response.close()
            time.sleep(min(0.2 * 2**attempt, 5) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _send(
        self, method: str, url: str, scope: str, headers: dict[str, str]
    ) -> requests.Response:
        session = self.session
        for attempt in range(3):
            response = session.request(
                method,
                url,
                headers={**headers, **self.auth.header(scope)},
                stream=True,
                timeout=TIMEOUT,
            )
            if response.status_code != 401:
                return response
            response.close()
            # At most two answers: a fresh token, then a renewal if that one was refused too.
            if attempt == 2 or not self.auth.answer(response, scope, session):
                break
        raise AuthError(
            f"registry {self.registry} refused access to {url} (HTTP 401). If it is private, "
            f"run 'docker login {self.registry}' (credentials are read from the docker config)."
        )

    def get_manifest(self, repo: str, reference: str, *, what: str = "") -> Fetched:
        """Fetch a manifest by tag or ``sha256:`` digest and verify its digest.

        A digest reference must match the content; for a tag, the ``Docker-Content-Digest``
        header (when sent) must.
        """
        what = what or f"{self.registry}/{repo}:{reference}"
        response = self._request("GET", repo, f"manifests/{reference}", {"Accept": mf.ACCEPT}, what)
        with response:
            if response.status_code == 404:
                raise RegistryError(
                    f"{what}: not found on registry {self.registry} (manifest unknown); check "
                    "the repository name, the tag and the digest"
                )
            if response.status_code != 200:
                raise RegistryError(
                    f"{what}: registry {self.registry} answered HTTP {response.status_code} "
                    f"for the manifest: {_snippet(response)}"
                )
            raw = _read_capped(response, MAX_MANIFEST_BYTES, what)
            media_type = mf.media_type_of(raw, response.headers.get("Content-Type"))
            header_digest = response.headers.get("Docker-Content-Digest")
        if media_type in mf.SCHEMA1_TYPES:
            digest = schema1_digest(raw)
        else:
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        expected = reference if reference.startswith("sha256:") else header_digest
        if expected and expected != digest:
            raise DigestMismatchError(
                f"{what}: the manifest from {self.registry} hashes to {digest}, not {expected}; "
                "the registry (or something between) sent different content than asked for"
            )
        return Fetched(raw, media_type, digest)

    def fetch_blob(
        self,
        repo: str,
        digest: str,
        size: int | None,
        store: Store,
        *,
        what: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> Path:
        """Stream a blob into the store, hashing while writing; memory stays at one chunk."""
        what = what or f"{self.registry}/{repo}@{digest}"
        last_error: Exception | None = None
        for _ in range(ATTEMPTS):
            # identity: the digest is of the bytes on the wire, never of a re-encoded body.
            response = self._request(
                "GET", repo, f"blobs/{digest}", {"Accept-Encoding": "identity"}, what
            )
            with response:
                if response.status_code == 404:
                    raise RegistryError(f"{what}: blob not found on registry {self.registry}")
                if response.status_code != 200:
                    raise RegistryError(
                        f"{what}: registry {self.registry} answered HTTP "
                        f"{response.status_code} for the blob: {_snippet(response)}"
                    )
                try:
                    return store.write_chunks(digest, size, _chunks(response, progress))
                except (requests.RequestException, DigestMismatchError) as exc:
                    last_error = exc
        raise RegistryError(f"{what}: download failed {ATTEMPTS} times; last error: {last_error}")


def _chunks(response: requests.Response, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    for chunk in response.raw.stream(CHUNK, decode_content=False):
        if progress:
            progress(len(chunk))
        yield chunk


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error (urllib3 wraps it twice)."""
    while True:
        inner = getattr(exc, "reason", None)
        if inner is None and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException) or inner is exc:
            return str(exc)
        exc = inner


def _read_capped(response: requests.Response, limit: int, what: str) -> bytes:
    data = bytearray()
    for chunk in response.raw.stream(64 << 10, decode_content=True):
        data += chunk
        if len(data) > limit:
            raise RegistryError(f"{what}: manifest larger than {limit} bytes; refusing it")
    return bytes(data)


def _snippet(response: requests.Response) -> str:
    try:
        return response.raw.read(300, decode_content=True).decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - the body is only decoration for an error message
        return ""


class RegistryPool:
    """One client per registry, created on first use with its URL scheme and credentials."""

    def __init__(self, scheme_for: Callable[[str], str]) -> None:
        self._scheme_for = scheme_for
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def client(self, registry: str, api_host: str) -> RegistryClient:
        with self._lock:
            if registry not in self._clients:
                self._clients[registry] = RegistryClient(
                    registry,
                    f"{self._scheme_for(registry)}://{api_host}",
                    load_credentials(registry),
                )
            return self._clients[registry]
