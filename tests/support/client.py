"""A requests session that answers registry auth challenges (Basic and Bearer tokens)."""

from __future__ import annotations

import base64
import re
from typing import Any

import requests
from requests.auth import AuthBase

_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuth(AuthBase):
    """On a 401, fetch credentials for the challenge, retry once, and reuse them afterwards.

    Basic challenges get the user's credentials; Bearer challenges get a token from the realm
    (anonymously when no credentials are given). A refused token request leaves the 401.
    """

    def __init__(self, credentials: tuple[str, str] | None = None):
        self.credentials = credentials
        self.authorization: str | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.authorization is not None:
            request.headers["Authorization"] = self.authorization
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        scheme, _, params = response.headers.get("WWW-Authenticate", "").partition(" ")
        fields = dict(_PARAM.findall(params))
        if scheme.lower() == "basic" and self.credentials is not None:
            user, password = self.credentials
            authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif scheme.lower() == "bearer":
            query = {k: fields[k] for k in ("service", "scope") if k in fields}
            reply = requests.get(fields["realm"], params=query, auth=self.credentials, timeout=30)
            if reply.status_code != 200:
                return response
            body = reply.json()
            authorization = f"Bearer {body.get('token') or body['access_token']}"
        else:
            return response
        if authorization == response.request.headers.get("Authorization"):
            return response
        self.authorization = authorization
        response.content  # noqa: B018 (drain the body so the connection can be reused)
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = authorization
        new = response.connection.send(retry, **kwargs)
        new.history.append(response)
        new.request = retry
        return new


def registry_session(auth: tuple[str, str] | None = None) -> requests.Session:
    """A session for registry API calls, logging in with `auth` when challenged."""
    session = requests.Session()
    session.auth = RegistryAuth(auth)
    return session
