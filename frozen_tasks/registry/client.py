"""Registry API v2 client: manifests (verified), blobs (streamed into the store, verified)."""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from .. import manifest as mf
from ..errors import AuthError, DigestMismatchError, FrozenError, RegistryError
from ..manifest import Fetched
from ..schema1 import schema1_digest
from ..store import CHUNK, Store
from .auth import Authenticator, load_credentials

MAX_MANIFEST_BYTES = 4 << 20  # a manifest larger than this is refused, not buffered
#: Tries per request (connection errors, stalls, 408, 429, 5xx, bad bodies); env FROZEN_ATTEMPTS.
ATTEMPTS = int(os.environ.get("FROZEN_ATTEMPTS", "5"))
#: Seconds to connect, and seconds without a single byte before a read counts as stalled (not a
#: limit on a long healthy download); env FROZEN_STALL_TIMEOUT.
TIMEOUT = (15.0, float(os.environ.get("FROZEN_STALL_TIMEOUT", "60")))
#: First backoff in seconds, doubled each retry (capped at 30), with jitter; env FROZEN_BACKOFF.
BACKOFF = float(os.environ.get("FROZEN_BACKOFF", "0.5"))
#: A 429 asking to wait longer than this (seconds) fails at once, saying which limit was hit.
MAX_RETRY_AFTER = 60.0
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
#: What a dropped, reset or stalled connection raises while a body is streamed.
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def _backoff(attempt: int) -> float:
    """Seconds to wait before try number ``attempt`` (2, 3, ...): exponential, jittered."""
    return min(BACKOFF * 2 ** (attempt - 2), 30.0) * (0.5 + random.random())


def _retry_after(headers: Any) -> float | None:
    """Retry-After in seconds (it may be a number of seconds or an HTTP date), or None."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class RegistryClient:
    """One registry, addressed as users name it (``docker.io``) and reached at ``base_url``."""

    def __init__(
        self,
        registry: str,
        base_url: str,
        credentials: Any = None,
        *,
        attempts: int = ATTEMPTS,
        ca: str | None = None,
    ) -> None:
        self.registry = registry
        self.base_url = base_url.rstrip("/")
        self.auth = Authenticator(registry, credentials)
        self.attempts = attempts
        # A CA bundle for this registry only; otherwise requests verifies against its default
        # bundle, or REQUESTS_CA_BUNDLE.
        self._verify: dict[str, str] = {"verify": ca} if ca else {}
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """A session per thread: connections are reused, and no cookie jar is shared."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # Credentials come from the docker config only. Without a session auth, requests
            # would look in ~/.netrc on every request (and import netrc), and a netrc entry
            # would replace the registry's Authorization header with its own Basic auth.
            session.auth = _header_auth_only
        return session

    def _request(
        self, method: str, repo: str, path: str, headers: dict[str, str], what: str
    ) -> requests.Response:
        """Send with auth and retries; return any final response (the caller checks status)."""
        scope = f"repository:{repo}:pull"
        url = f"{self.base_url}/v2/{repo}/{path}"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._send(method, url, scope, headers)
            except requests.RequestException as exc:
                if attempt == self.attempts:
                    hint = "Check the network and the registry address."
                    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                        hint = (
                            "Its TLS certificate is not trusted: name its CA bundle in "
                            f'"registries": {{"{self.registry}": {{"ca": "ca.pem"}}}} in '
                            "images.json, or in REQUESTS_CA_BUNDLE."
                        )
                    elif isinstance(exc, requests.exceptions.SSLError):
                        hint = (
                            f'If {self.registry} serves plain HTTP, set "registries": '
                            f'{{"{self.registry}": {{"insecure": true}}}} in images.json.'
                        )
                    raise RegistryError(
                        f"{what}: cannot reach registry {self.registry} at {self.base_url} "
                        f"({self.attempts} tries): {_reason(exc)}. {hint}"
                    ) from None
                time.sleep(_backoff(attempt + 1))
                continue
            if response.status_code not in _RETRY_STATUS or attempt == self.attempts:
                if response.status_code == 429:
                    raise RegistryError(self._rate_limited(response, what))
                return response
            wait = _retry_after(response.headers) if response.status_code == 429 else None
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise RegistryError(self._rate_limited(response, what))
            response.close()
            time.sleep(wait if wait is not None else _backoff(attempt + 1))
        raise AssertionError("unreachable")

    def _rate_limited(self, response: requests.Response, what: str) -> str:
        """Say which limit was hit and how to raise it (Docker Hub's headers when sent)."""
        response.close()
        limit = response.headers.get("RateLimit-Limit", "")
        remaining = response.headers.get("RateLimit-Remaining", "")
        wait = _retry_after(response.headers)
        text = f"{what}: registry {self.registry} is rate limiting this client (HTTP 429"
        if limit:
            count, _, window = limit.partition(";w=")
            text += f"; limit {count} pulls per {window or '?'} s"
            if remaining:
                text += f", {remaining.partition(';')[0]} left"
        text += ")"
        if wait is not None:
            text += f"; it asks to wait {wait:.0f} s"
        who = "for your account" if self.auth.credentials else "for anonymous pulls"
        return (
            text + f". The limit is {who}: log in ('docker login {self.registry}') or use "
            "a mirror to raise it, or run again later; what was fetched is kept."
        )

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
                **self._verify,
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
        for attempt in range(1, self.attempts + 1):
            response = self._request(
                "GET", repo, f"manifests/{reference}", {"Accept": mf.ACCEPT}, what
            )
            with response:
                if response.status_code == 404:
                    raise RegistryError(
                        f"{what}: not found on registry {self.registry} (manifest unknown); "
                        "check the repository name, the tag and the digest"
                    )
                if response.status_code != 200:
                    raise RegistryError(
                        f"{what}: registry {self.registry} answered HTTP "
                        f"{response.status_code} for the manifest: {_snippet(response)}"
                    )
                try:
                    raw = _read_capped(response, MAX_MANIFEST_BYTES, what)
                except _NETWORK_ERRORS as exc:
                    if attempt == self.attempts:
                        raise RegistryError(
                            f"{what}: reading the manifest from {self.registry} failed "
                            f"{self.attempts} times: {_reason(exc)}"
                        ) from None
                    time.sleep(_backoff(attempt + 1))
                    continue
                media_type = mf.media_type_of(raw, response.headers.get("Content-Type"))
                header_digest = response.headers.get("Docker-Content-Digest")
                break
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

    def head_manifest(self, repo: str, tag: str, *, what: str = "") -> str | None:
        """The digest a tag points at, from a HEAD (Docker Hub does not count HEADs against
        its pull limit); None when the registry does not say."""
        response = self._request("HEAD", repo, f"manifests/{tag}", {"Accept": mf.ACCEPT}, what)
        with response:
            digest = response.headers.get("Docker-Content-Digest")
            return digest if response.status_code == 200 and digest else None

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
        """Stream a blob into the store, hashing while writing; memory stays at one chunk.

        An interrupted download keeps its partial file and continues with ``Range: bytes=N-``
        (in this attempt loop, or in a later run). A server that ignores Range (200) or
        answers 416 is handled by starting over; a body that is too long, too short or wrong
        is never stored. ``size`` is in bytes (None when the manifest does not say).
        """
        what = what or f"{self.registry}/{repo}@{digest}"
        writer = store.resumable_writer(digest, size)
        last_error: object = None
        try:
            for attempt in range(1, self.attempts + 1):
                if attempt > 1:
                    time.sleep(_backoff(attempt))
                headers = {"Accept-Encoding": "identity"}  # the digest is of the bytes sent
                if writer.size:
                    headers["Range"] = f"bytes={writer.size}-"
                response = self._request("GET", repo, f"blobs/{digest}", headers, what)
                with response:
                    status = response.status_code
                    if status == 416:
                        # Never read a 416 body: distribution sends a wrong Content-Length.
                        writer.restart()
                        last_error = "HTTP 416 for a resumed download"
                        continue
                    if status == 404:
                        raise RegistryError(f"{what}: blob not found on registry {self.registry}")
                    if status not in (200, 206):
                        raise RegistryError(
                            f"{what}: registry {self.registry} answered HTTP {status} for the "
                            f"blob: {_snippet(response)}"
                        )
                    if status == 200 or not _range_starts_at(response, writer.size):
                        writer.restart()  # Range ignored (or odd): the full body follows
                    try:
                        for chunk in response.raw.stream(CHUNK, decode_content=False):
                            writer.write(chunk)
                            if progress:
                                progress(len(chunk))
                    except DigestMismatchError as exc:  # longer than announced
                        writer.restart()
                        last_error = exc
                        continue
                    except _NETWORK_ERRORS as exc:
                        last_error = f"{type(exc).__name__}: {_reason(exc)}"
                        continue  # what arrived is kept: the next try resumes after it
                if size is not None and writer.size < size:
                    last_error = f"the connection ended after {writer.size} of {size} bytes"
                    continue
                try:
                    return writer.commit()
                except DigestMismatchError as exc:
                    writer.restart()
                    last_error = exc
            raise RegistryError(
                f"{what}: download from {self.registry} failed {self.attempts} times; last error: "
                f"{last_error}. Nothing wrong was stored; run again to resume."
            )
        finally:
            if writer.size and not writer.file.closed:
                writer.keep()
            elif not writer.file.closed:
                writer.discard()


def _header_auth_only(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A requests auth that leaves the request as it is: the Authorization header, if any,
    is the one the Authenticator set."""
    return request


def _range_starts_at(response: requests.Response, offset: int) -> bool:
    """True when a 206 answer's Content-Range starts where our partial file ends."""
    value = response.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    return unit == "bytes" and rest.split("-", 1)[0] == str(offset)


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


class MirroredClient:
    """A registry reached through its mirrors first, in order, then itself.

    Content is verified the same way whoever serves it, so a mirror cannot substitute it: a
    mirror that fails, lacks the content or sends wrong bytes is skipped. Each endpoint gets
    its own credentials (a mirror never sees the upstream's). A blob partly fetched from one
    endpoint is resumed from the next.
    """

    def __init__(self, endpoints: list[RegistryClient]) -> None:
        self.endpoints = endpoints
        self.registry = endpoints[-1].registry

    def _each(self, call: Callable[[RegistryClient], Any]) -> Any:
        skipped = []
        for endpoint in self.endpoints[:-1]:
            try:
                return call(endpoint)
            except FrozenError as exc:
                skipped.append(f"mirror {endpoint.base_url}: {exc}")
        try:
            return call(self.endpoints[-1])
        except FrozenError as exc:
            if skipped:
                raise type(exc)(f"{exc} (mirrors tried first: {'; '.join(skipped)})") from None
            raise

    def get_manifest(self, repo: str, reference: str, *, what: str = "") -> Fetched:
        return self._each(lambda c: c.get_manifest(repo, reference, what=what))

    def head_manifest(self, repo: str, tag: str, *, what: str = "") -> str | None:
        return self._each(lambda c: c.head_manifest(repo, tag, what=what))

    def fetch_blob(self, repo: str, digest: str, size: int | None, store: Store, **kw: Any) -> Path:
        return self._each(lambda c: c.fetch_blob(repo, digest, size, store, **kw))


class RegistryPool:
    """One client per registry, created on first use: its URL scheme, CA, credentials and
    mirrors come from ``settings(registry)``."""

    def __init__(self, settings: Callable[[str], Any]) -> None:
        self._settings = settings
        self._clients: dict[str, MirroredClient] = {}
        self._lock = threading.Lock()

    def client(self, registry: str, api_host: str) -> MirroredClient:
        with self._lock:
            if registry not in self._clients:
                self._clients[registry] = self._create(registry, api_host)
            return self._clients[registry]

    def _create(self, registry: str, api_host: str) -> MirroredClient:
        settings = self._settings(registry)
        ca = str(settings.ca) if settings.ca else None
        endpoints = []
        for url in settings.mirrors:
            host = urlsplit(url).netloc
            # A mirror that is down should cost little before the next endpoint is tried.
            endpoints.append(RegistryClient(host, url, load_credentials(host), attempts=2))
        upstream = f"{settings.scheme}://{api_host}"
        endpoints.append(RegistryClient(registry, upstream, load_credentials(registry), ca=ca))
        return MirroredClient(endpoints)
