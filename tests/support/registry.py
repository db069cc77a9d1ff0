"""Start and stop docker-registry (distribution 2.8) processes on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3

from .process import free_port, stop_process, wait_for_service
from .tokenserver import TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"

# bcrypt of "secret" (cost 5, made once with libxcrypt); distribution's htpasswd is bcrypt-only.
BASIC_USERS = {"alice": "secret"}
_HTPASSWD = "alice:$2b$05$4LZK9Q9kxXHwNG.DNOVsZ.b4BvwHSdRkZy/ibLbn1sET26p9UA59O\n"

# One access-log line (Apache combined format) is written per request.
_ACCESS_LINE = re.compile(r'^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" \d{3} ')
# The start-up probe, left out of request_log().
_PROBE_URI = "/v2/?frozen-tasks-probe"


@dataclass
class Registry:
    """A running docker-registry process."""

    process: subprocess.Popen[bytes]
    host: str
    root: Path
    log_path: Path
    config: dict[str, Any]
    users: dict[str, str] = field(default_factory=dict)
    token_server: TokenServer | None = None

    @property
    def url(self) -> str:
        scheme = "https" if "tls" in self.config.get("http", {}) else "http"
        return f"{scheme}://{self.host}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def request_log(self) -> list[str]:
        """Requests answered so far as "METHOD URI", in order (start-up probes left out)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        matches = (m for m in map(_ACCESS_LINE.match, lines) if m and m[2] != _PROBE_URI)
        return [f"{m[1]} {m[2]}" for m in matches]

    def stop(self) -> None:
        """Stop the registry process (and its token server, if any)."""
        stop_process(self.process)
        if self.token_server is not None:
            self.token_server.stop()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _answers(url: str) -> bool:
    """Whether the registry answers yet (a TLS one is probed without checking its cert)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            return requests.get(url, timeout=1, verify=False).status_code in (200, 401)
    except requests.ConnectionError:
        return False


def start_registry(
    tmp_dir: Path, auth: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> Registry:
    """Start a registry with storage under tmp_dir; `extra` is deep-merged into its config."""
    port = free_port()
    workdir = Path(tmp_dir) / f"registry-{port}"
    workdir.mkdir(parents=True)
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "frozen-tasks-tests"},
    }
    if auth is not None:
        config["auth"] = auth
    _merge(config, extra or {})
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT
        )
    host = f"127.0.0.1:{port}"
    scheme = "https" if "tls" in config["http"] else "http"
    probe = f"{scheme}://{host}{_PROBE_URI}"
    wait_for_service(lambda: _answers(probe), proc, log_path, "registry")
    return Registry(proc, host, workdir / "storage", log_path, config)


def start_basic_registry(tmp_dir: Path) -> Registry:
    """A registry with htpasswd auth for BASIC_USERS."""
    htpasswd = Path(tmp_dir) / "htpasswd"
    htpasswd.write_text(_HTPASSWD)
    registry = start_registry(tmp_dir, auth={"htpasswd": {"realm": "basic", "path": str(htpasswd)}})
    registry.users = dict(BASIC_USERS)
    return registry


def start_token_registry(
    tmp_dir: Path, users: dict[str, str], token_lifetime: int = 300
) -> Registry:
    """A registry in token auth mode backed by a fresh TokenServer (`.token_server`)."""
    server = TokenServer(Path(tmp_dir), users, token_lifetime)
    try:
        registry = start_registry(tmp_dir, auth=server.auth_config())
    except BaseException:
        server.stop()
        raise
    registry.token_server = server
    registry.users = users
    return registry


def start_tls_registry(tmp_dir: Path) -> tuple[Registry, Path]:
    """A registry serving HTTPS with a self-signed certificate for 127.0.0.1; returns it and
    the certificate's PEM path (the CA bundle a client must trust)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frozen-tasks test registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = tmp_dir / "registry.crt", tmp_dir / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    tls = {"http": {"tls": {"certificate": str(cert_path), "key": str(key_path)}}}
    return start_registry(tmp_dir, extra=tls), cert_path
