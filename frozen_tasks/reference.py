"""Parse and normalise image references the way docker does.

``busybox`` → registry ``docker.io``, repository ``library/busybox``, tag ``latest``;
``127.0.0.1:5000/team/app:v1@sha256:<hex>`` keeps its host, and the digest pins what is fetched.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)  # \w as in Go: ASCII only
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)


@dataclass(frozen=True)
class Reference:
    """A normalised image reference.

    ``registry`` is the name users write (``docker.io``, ``127.0.0.1:5000``); ``repository`` the
    path on it (``library/busybox``); ``tag`` may be None when only a digest is given; ``digest``
    is a ``sha256:``-prefixed pin or None.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """Host (and port) serving the registry API: Docker Hub's API lives elsewhere."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def familiar_name(self) -> str:
        """The repository as ``docker images`` shows it: ``busybox``, ``arm32v7/hello-world``."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def full_name(self) -> str:
        """The repository with its registry: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def familiar(self) -> str:
        """``busybox:latest@sha256:…`` style, as a user would write it."""
        text = self.familiar_name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        text = self.full_name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_loopback(registry: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``[::1]`` (with or without a port)."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.index("]")]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_reference(text: str) -> Reference:
    """Parse ``[host[:port]/]path[:tag][@sha256:hex]``; raise InvalidReferenceError saying why."""
    if not isinstance(text, str) or not text:
        raise InvalidReferenceError(f"{text!r} is not an image reference (e.g. 'busybox:1.36')")
    rest = text
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST.fullmatch(digest):
            raise InvalidReferenceError(
                f"{text!r}: digest {digest!r} is not 'sha256:' followed by 64 lowercase hex digits"
            )
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise InvalidReferenceError(
                f"{text!r}: tag {tag!r} is invalid (letters, digits, '_', '.', '-'; at most 128)"
            )
    parts = rest.split("/")
    first = parts[0]
    looks_like_host = "." in first or ":" in first or first.startswith("[") or first == "localhost"
    if len(parts) > 1 and looks_like_host:
        if not _HOST.fullmatch(first):
            raise InvalidReferenceError(f"{text!r}: {first!r} is not a valid registry host[:port]")
        registry, path = first, parts[1:]
    else:
        registry, path = DOCKER_HUB, parts
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    for component in path:
        if not _COMPONENT.fullmatch(component):
            hint = " (repository names must be lowercase)" if component.lower() != component else ""
            raise InvalidReferenceError(
                f"{text!r}: repository component {component!r} is invalid{hint}"
            )
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry=registry, repository="/".join(path), tag=tag, digest=digest)
