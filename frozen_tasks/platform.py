"""Platforms (``os/architecture[/variant]``) and the host default, as docker names them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}
_PART = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class Platform:
    """An OCI platform: ``os``, ``architecture`` and an optional ``variant`` (``v7``, ``v8``)."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def normalized(self) -> dict[str, str]:
        """The form platforms are compared in: arm64 means v8, arm means v7 unless said."""
        variant = self.variant or ""
        if self.architecture == "arm64" and variant == "":
            variant = "v8"
        elif self.architecture == "arm" and variant == "":
            variant = "v7"
        return {"os": self.os, "architecture": self.architecture, "variant": variant}


def parse_platform(text: str) -> Platform:
    """Parse ``linux/amd64`` or ``linux/arm/v7``; raise ValueError with the expected form."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) not in (2, 3) or not all(_PART.fullmatch(p) for p in parts):
        raise ValueError(
            f"{text!r} is not a platform; write it as os/architecture[/variant], "
            "e.g. 'linux/amd64' or 'linux/arm/v7'"
        )
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def host_platform() -> Platform:
    """``linux/`` + this machine's architecture, as docker picks by default."""
    machine = os.uname().machine  # what platform.machine() returns, without importing it
    arch, variant = _MACHINE_TO_ARCH.get(machine.lower(), (machine, None))
    return Platform("linux", arch, variant)
