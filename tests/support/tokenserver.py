"""A Docker token-protocol auth server for distribution's `auth: token` mode."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVICE = "frozen-tasks-registry"
ISSUER = "frozen-tasks-token-server"
PRIVATE_PREFIX = "private/"


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server received."""

    path: str
    query: dict[str, list[str]]  # for a POST: the form fields
    authorization: bool
    method: str = "GET"


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The libtrust key ID (keyIDFromCryptoKey) that distribution matches against `kid`."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def _self_signed_cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _scopes(query: dict[str, list[str]]) -> list[tuple[str, str, list[str]]]:
    """Parse `scope` parameters ("type:name:a,b", space-separated or repeated)."""
    parsed = []
    for value in query.get("scope", []):
        for scope in value.split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            parsed.append((kind, name, actions.split(",")))
    return parsed


class TokenServer:
    """Token server on 127.0.0.1: anonymous pull outside private/, users pull+push anywhere.

    Tokens are ES256 JWTs whose header `kid` is the libtrust ID of a key generated at start;
    its self-signed certificate is written to `rootcertbundle` for the registry.
    """

    def __init__(self, directory: Path, users: dict[str, str], token_lifetime: int = 300):
        self.users = users
        self.token_lifetime = token_lifetime
        self.requests: list[TokenRequest] = []
        # OAuth2 refresh tokens (docker's identity tokens) the POST /token endpoint accepts.
        self.refresh_tokens: dict[str, str] = {}
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.kid = libtrust_key_id(self._key.public_key())
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.rootcertbundle = directory / f"token-{self._httpd.server_address[1]}.pem"
        self.rootcertbundle.write_bytes(
            _self_signed_cert(self._key).public_bytes(serialization.Encoding.PEM)
        )
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        """URL of the token endpoint."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/token"

    def auth_config(self) -> dict[str, dict[str, str]]:
        """The `auth` section of a registry config trusting this server."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.rootcertbundle),
            }
        }

    def issue(self, subject: str, access: list[dict[str, object]]) -> str:
        """A signed token granting `access` to `subject`."""
        now = int(datetime.datetime.now(datetime.UTC).timestamp())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + self.token_lifetime,
            "nbf": now,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})

    def grant(self, user: str | None, query: dict[str, list[str]]) -> list[dict[str, object]]:
        """The access entries the policy allows for the requested scopes."""
        access: list[dict[str, object]] = []
        for kind, name, actions in _scopes(query):
            if kind != "repository":
                continue
            if user is not None:
                allowed = {"pull", "push"}
            elif name.startswith(PRIVATE_PREFIX):
                allowed = set()
            else:
                allowed = {"pull"}
            access.append(
                {"type": kind, "name": name, "actions": [a for a in actions if a in allowed]}
            )
        return access

    def stop(self) -> None:
        """Shut the HTTP server down."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(ok, user) for an Authorization header; no header is an anonymous success."""
        if header is None:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False, None
        return self.users.get(user) == password, user

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                header = self.headers.get("Authorization")
                server.requests.append(TokenRequest(url.path, query, header is not None))
                ok, user = server._authenticate(header)
                if url.path != "/token":
                    self._reply(404, {"details": "not found"})
                elif not ok:
                    self._reply(401, {"details": "incorrect username or password"})
                else:
                    token = server.issue(user or "", server.grant(user, query))
                    issued = datetime.datetime.now(datetime.UTC).isoformat()
                    self._reply(
                        200,
                        {
                            "token": token,
                            "access_token": token,
                            "expires_in": server.token_lifetime,
                            "issued_at": issued,
                        },
                    )

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                """OAuth2 grant_type=refresh_token, as docker sends an identity token."""
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                header = self.headers.get("Authorization")
                server.requests.append(TokenRequest(url.path, form, header is not None, "POST"))
                field = {key: values[0] for key, values in form.items()}
                user = server.refresh_tokens.get(field.get("refresh_token", ""))
                if url.path != "/token":
                    self._reply(404, {"details": "not found"})
                elif field.get("grant_type") != "refresh_token" or not field.get("client_id"):
                    self._reply(400, {"error": "unsupported_grant_type"})
                elif user is None:  # RFC 6749 5.2
                    self._reply(400, {"error": "invalid_grant"})
                else:
                    token = server.issue(user, server.grant(user, form))
                    self._reply(200, {"access_token": token, "scope": field.get("scope", ""),
                                      "expires_in": server.token_lifetime})

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Requests are kept in server.requests instead of printed."""

        return Handler
