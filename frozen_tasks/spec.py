"""images.json (format version 1) → a validated FrozenConfig.

Every error names the file, the entry and the fix, and is raised before any network request.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidReferenceError, SpecError
from .platform import Platform, host_platform, parse_platform
from .reference import Reference, is_loopback, parse_reference

_TOP_KEYS = {"output", "platform", "images", "registries", "tarball"}
_IMAGE_KEYS = {"ref", "platform", "tags"}
_REGISTRY_KEYS = {"insecure", "mirrors", "ca"}
MIRRORS_ENV = "FROZEN_MIRRORS"


@dataclass(frozen=True)
class RegistryConfig:
    """Per-registry settings from ``registries.<host>`` (and ``$FROZEN_MIRRORS``).

    ``mirrors`` are base URLs (``http://mirror.local:5000``) tried in order before the
    registry itself; ``ca`` is a PEM bundle that this registry's TLS certificate must chain to.
    """

    insecure: bool | None = None  # None: plain HTTP for loopback hosts only
    mirrors: tuple[str, ...] = ()
    ca: Path | None = None


@dataclass(frozen=True)
class Endpoint:
    """How to reach one registry: URL scheme, mirrors, CA bundle."""

    scheme: str
    mirrors: tuple[str, ...]
    ca: Path | None


@dataclass(frozen=True)
class ImageSpec:
    """One image to freeze: what to fetch, for which platform, and the names it gets.

    ``tags`` are familiar ``name:tag`` strings (``busybox:1.36``); ``key`` names its doit tasks.
    """

    ref: Reference
    platform: Platform
    tags: tuple[str, ...]
    key: str


@dataclass(frozen=True)
class FrozenConfig:
    """Everything one freeze needs: output directory, images, registry settings, cache root."""

    output: Path
    images: tuple[ImageSpec, ...]
    registries: Mapping[str, RegistryConfig] = field(default_factory=dict)
    cache: Path = field(default_factory=lambda: default_cache())
    source: Path | None = None
    tarball: Path | None = None

    @cached_property  # Path.resolve() is a system call per path component
    def state_dir(self) -> Path:
        """Per-output bookkeeping (resolved manifests, doit state), kept out of the output."""
        key = hashlib.sha256(str(self.output.resolve()).encode()).hexdigest()[:16]
        return self.cache / "state" / key

    def scheme(self, registry: str) -> str:
        """``http`` for registries set ``insecure`` and, unless set ``"insecure": false`` or
        given a ``ca``, for loopback ones (as docker treats them); ``https`` otherwise."""
        settings = self.registries.get(registry, RegistryConfig())
        if settings.insecure is None and settings.ca is None:
            return "http" if is_loopback(registry) else "https"
        return "http" if settings.insecure else "https"

    def endpoint(self, registry: str) -> Endpoint:
        """Scheme, mirrors and CA bundle for ``registry`` (as references name it)."""
        settings = self.registries.get(registry, RegistryConfig())
        return Endpoint(self.scheme(registry), settings.mirrors, settings.ca)


def default_cache() -> Path:
    """``$FROZEN_CACHE``, else ``$XDG_CACHE_HOME/frozen-tasks``, else ``~/.cache/frozen-tasks``."""
    if os.environ.get("FROZEN_CACHE"):
        return Path(os.environ["FROZEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "frozen-tasks"


def load_images(path: str | os.PathLike[str]) -> FrozenConfig:
    """Read and validate an images.json file (format version 1, see README).

    Returns the FrozenConfig: output directory and tarball resolved against the file's
    directory, images with their platform and tags, registry settings (with
    ``$FROZEN_MIRRORS`` merged in). Makes no network request.

    Raises:
        SpecError: the file is missing or not JSON, or an entry is invalid; the message names
            the file, the entry (``images[2]``) and the fix.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: not found; create it (see README, 'images.json')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{path}: cannot read it as JSON: {exc}") from None
    return parse_config(data, source=path)


def parse_config(data: Any, *, source: Path) -> FrozenConfig:
    """Validate a parsed images.json document; ``source`` is its path, named in errors."""
    where = str(source)
    if not isinstance(data, dict):
        raise SpecError(f"{where}: the top level must be a JSON object with an 'images' list")
    _reject_unknown(data, _TOP_KEYS, where)
    output = data.get("output", "frozen")
    if not isinstance(output, str) or not output:
        raise SpecError(f"{where}: 'output' must be a directory path string (default 'frozen')")
    tarball = data.get("tarball")
    if tarball is not None and (not isinstance(tarball, str) or not tarball):
        raise SpecError(f"{where}: 'tarball' must be a file path string, e.g. \"frozen.tar\"")
    default_platform = host_platform()
    try:
        if "platform" in data:
            default_platform = parse_platform(data["platform"])
    except ValueError as exc:
        raise SpecError(f"{where}: 'platform': {exc}") from None
    registries = _with_env_mirrors(
        _parse_registries(data.get("registries", {}), where, source.parent)
    )
    images = data.get("images")
    if not isinstance(images, list):
        raise SpecError(f"{where}: 'images' must be a list of references or objects with 'ref'")
    specs = _parse_images(images, default_platform, where)
    return FrozenConfig(
        output=source.parent / output,
        images=specs,
        registries=registries,
        source=source,
        tarball=source.parent / tarball if tarball else None,
    )


def config_from_refs(output: str | os.PathLike[str], refs: Iterable[str]) -> FrozenConfig:
    """The config ``frozen-download DIR ref...`` means: output ``DIR``, host platform, each
    reference's own familiar name as its tag, no lock file.

    Raises:
        SpecError: a reference is invalid (the message quotes it), or ``$FROZEN_MIRRORS`` is.
    """
    specs = _parse_images(list(refs), host_platform(), "<command line>")
    return FrozenConfig(output=Path(output), images=specs, registries=_with_env_mirrors({}))


def _registry_name(host: str) -> str:
    """``index.docker.io`` → ``docker.io``: the name references resolve to ("" if invalid)."""
    try:
        return parse_reference(f"{host}/x").registry if "/" not in host else ""
    except InvalidReferenceError:
        return ""


def _mirror_urls(value: Any, at: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise SpecError(f'{at}: must be a list of URLs, e.g. ["http://mirror.local:5000"]')
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise SpecError(
                f"{at}: {url!r} is not a mirror base URL such as "
                "'https://mirror.example.com' (scheme and host, no path)"
            )
    return tuple(u.rstrip("/") for u in value)


def env_mirrors() -> dict[str, tuple[str, ...]]:
    """``$FROZEN_MIRRORS``: ``host=url[,url...][;host=url...]``, e.g.
    ``docker.io=http://mirror.ci:5000``; raises SpecError naming the variable."""
    result: dict[str, tuple[str, ...]] = {}
    for item in filter(None, os.environ.get(MIRRORS_ENV, "").split(";")):
        host, sep, urls = item.partition("=")
        at = f"${MIRRORS_ENV} entry {item!r}"
        name = _registry_name(host.strip())
        if not sep or not name:
            raise SpecError(
                f"{at}: write it as host=url[,url...], e.g. docker.io=http://mirror.ci:5000"
            )
        result[name] = _mirror_urls([u.strip() for u in urls.split(",") if u.strip()], at)
    return result


def _parse_registries(value: Any, where: str, base: Path) -> dict[str, RegistryConfig]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: 'registries' must be an object keyed by registry host")
    result = {}
    for host, settings in value.items():
        at = f"{where}: registries[{host!r}]"
        name = _registry_name(host)
        if not name:
            raise SpecError(f"{at}: {host!r} is not a registry host[:port]")
        if not isinstance(settings, dict):
            raise SpecError(f'{at}: must be an object such as {{"insecure": true}}')
        _reject_unknown(settings, _REGISTRY_KEYS, at)
        insecure = settings.get("insecure")
        if insecure is not None and not isinstance(insecure, bool):
            raise SpecError(f"{at}: 'insecure' must be true or false")
        mirrors = _mirror_urls(settings.get("mirrors", []), f"{at}.mirrors")
        ca = settings.get("ca")
        if ca is not None:
            if not isinstance(ca, str) or not (base / ca).is_file():
                raise SpecError(
                    f"{at}: 'ca' must name a PEM file (relative to {where}); {ca!r} is not one"
                )
            ca = base / ca
        result[name] = RegistryConfig(insecure=insecure, mirrors=mirrors, ca=ca)
    return result


def _with_env_mirrors(registries: dict[str, RegistryConfig]) -> dict[str, RegistryConfig]:
    """Mirrors from ``$FROZEN_MIRRORS`` go first: the machine knows its nearest cache."""
    for name, urls in env_mirrors().items():
        settings = registries.get(name, RegistryConfig())
        merged = urls + tuple(u for u in settings.mirrors if u not in urls)
        registries[name] = RegistryConfig(settings.insecure, merged, settings.ca)
    return registries


def _parse_images(entries: list[Any], default: Platform, where: str) -> tuple[ImageSpec, ...]:
    specs: list[ImageSpec] = []
    for index, entry in enumerate(entries):
        at = f"{where}: images[{index}]"
        if isinstance(entry, str):
            entry = {"ref": entry}
        if not isinstance(entry, dict):
            raise SpecError(f"{at}: must be a reference string or an object with 'ref'")
        _reject_unknown(entry, _IMAGE_KEYS, at)
        if "ref" not in entry:
            raise SpecError(f"{at}: missing 'ref' (e.g. \"busybox:1.36@sha256:<hex>\")")
        try:
            ref = parse_reference(entry["ref"])
        except InvalidReferenceError as exc:
            raise SpecError(f"{at}: {exc}") from None
        platform = default
        if "platform" in entry:
            try:
                platform = parse_platform(entry["platform"])
            except ValueError as exc:
                raise SpecError(f"{at}: 'platform': {exc}") from None
        tags = _parse_tags(entry, ref, at)
        key = ref.familiar()
        if "platform" in entry:
            key += f"[{platform}]"
        if any(s.key == key for s in specs):
            raise SpecError(f"{at}: {key!r} is listed twice; remove one, or give each a platform")
        for tag in tags:
            other = next((i for i, s in enumerate(specs) if tag in s.tags), None)
            if other is not None:
                raise SpecError(
                    f"{at}: the name {tag!r} is already given to images[{other}]; one name can "
                    'load only one image, so set "tags" to tell them apart'
                )
        specs.append(ImageSpec(ref=ref, platform=platform, tags=tags, key=key))
    return tuple(specs)


def _parse_tags(entry: dict[str, Any], ref: Reference, at: str) -> tuple[str, ...]:
    if "tags" not in entry:
        return (f"{ref.familiar_name}:{ref.tag}",) if ref.tag else ()
    tags = entry["tags"]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise SpecError(f"{at}: 'tags' must be a list of names such as [\"app:v1\"]")
    result = []
    for tag in tags:
        try:
            parsed = parse_reference(tag)
        except InvalidReferenceError as exc:
            raise SpecError(f"{at}: 'tags': {exc}") from None
        if parsed.digest:
            raise SpecError(f"{at}: 'tags': {tag!r} has a digest; a tag only names the image")
        result.append(f"{parsed.familiar_name}:{parsed.tag}")
    return tuple(result)


def _reject_unknown(obj: dict[str, Any], known: set[str], at: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        allowed = ", ".join(sorted(known))
        raise SpecError(f"{at}: unknown key {unknown[0]!r}; allowed keys: {allowed}")
