"""Deterministic test images, pushed through the registry HTTP API."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin

import requests

from .client import registry_session
from .process import skopeo
from .registry import Registry

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

_OCI_LAYER_TYPES = {DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}
_FORMATS = {
    "docker": (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_MANIFEST_LIST),
    "oci": (OCI_MANIFEST, OCI_CONFIG, OCI_INDEX),
}
HELLO_MESSAGE = "hello from frozen-tasks"
EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

Format = Literal["docker", "oci"]
Platform = tuple[str, str, str | None]  # (os, architecture, variant)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    """A layer blob; media_type is the Docker one (push_image maps it for OCI images)."""

    blob: bytes
    digest: str
    diff_id: str
    size: int
    media_type: str


@dataclass(frozen=True)
class PushedImage:
    """An image manifest pushed to a registry, with everything it references."""

    repo: str
    tag: str | None
    manifest_digest: str
    manifest_bytes: bytes
    media_type: str
    config_digest: str
    config_bytes: bytes
    config_media_type: str
    layers: list[Layer]
    layer_media_types: list[str]
    platform: Platform

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_bytes)


@dataclass(frozen=True)
class PushedIndex:
    """An OCI image index or Docker manifest list pushed to a registry."""

    repo: str
    tag: str | None
    manifest_digest: str
    manifest_bytes: bytes
    media_type: str
    images: list[PushedImage]

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_bytes)


def _tar_member(path: str, spec: bytes | tuple[Any, ...]) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(path)
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = "root"
    data = None
    match spec:
        case (bytes() as data) | ("file", bytes() as data):
            info.mode = 0o644
        case ("file", bytes() as data, int() as mode):
            info.mode = mode
        case ("dir",):
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        case ("dir", int() as mode):
            info.type, info.mode = tarfile.DIRTYPE, mode
        case ("symlink", str() as target):
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        case ("hardlink", str() as target):
            info.type, info.linkname, info.mode = tarfile.LNKTYPE, target, 0o644
        case _:
            raise ValueError(f"bad layer entry for {path}: {spec!r}")
    if data is not None:
        info.size = len(data)
    return info, data


def make_layer(
    files: dict[str, bytes | tuple[Any, ...]], compress: Literal["gzip"] | None = "gzip"
) -> Layer:
    """A reproducible layer tar (sorted entries, mtime 0, root-owned) from `files`.

    Values: bytes (file, mode 0644), ("file", data[, mode]), ("dir"[, mode]),
    ("symlink", target) or ("hardlink", target_path). Leading "/" in paths is dropped.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = sorted(((p.lstrip("/"), spec) for p, spec in files.items()), key=lambda e: e[0])
        for path, spec in entries:
            info, data = _tar_member(path, spec)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    blob = gzip.compress(raw, mtime=0) if compress == "gzip" else raw
    media_type = DOCKER_LAYER_GZIP if compress == "gzip" else DOCKER_LAYER
    return Layer(blob, sha256_digest(blob), sha256_digest(raw), len(blob), media_type)


@functools.cache
def busybox_layer() -> Layer:
    """A gzip layer with /bin/busybox (this machine's static one) and sh, echo, cat links."""
    files: dict[str, bytes | tuple[Any, ...]] = {
        "bin": ("dir",),
        "bin/busybox": ("file", Path("/bin/busybox").read_bytes(), 0o755),
    }
    files.update({f"bin/{applet}": ("symlink", "busybox") for applet in ("sh", "echo", "cat")})
    return make_layer(files)


def _check(response: requests.Response) -> requests.Response:
    if not response.ok:
        raise AssertionError(
            f"{response.request.method} {response.url} -> {response.status_code}: {response.text}"
        )
    return response


def push_blob(session: requests.Session, registry_url: str, repo: str, data: bytes) -> str:
    """Upload data as a blob (POST then monolithic PUT); returns its digest."""
    digest = sha256_digest(data)
    start = _check(session.post(f"{registry_url}/v2/{repo}/blobs/uploads/", timeout=30))
    location = urljoin(registry_url, start.headers["Location"])
    _check(
        session.put(
            location,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=60,
        )
    )
    return digest


def push_manifest(
    session: requests.Session,
    registry_url: str,
    repo: str,
    reference: str,
    manifest: bytes,
    media_type: str,
) -> str:
    """PUT a manifest under a tag or digest; returns the digest the registry reports."""
    response = _check(
        session.put(
            f"{registry_url}/v2/{repo}/manifests/{reference}",
            data=manifest,
            headers={"Content-Type": media_type},
            timeout=30,
        )
    )
    return response.headers["Docker-Content-Digest"]


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=3).encode()


def push_image(
    registry_url: str,
    repo: str,
    tag: str | None,
    layers: list[Layer],
    *,
    fmt: Format = "docker",
    config_overrides: dict[str, Any] | None = None,
    platform: Platform = ("linux", "amd64", None),
    session: requests.Session | None = None,
) -> PushedImage:
    """Push a single-platform image; tag None pushes by digest only.

    config_overrides go into the image config's "config" object (Cmd, Env, Entrypoint, ...).
    """
    session = session or registry_session()
    manifest_type, config_type, _ = _FORMATS[fmt]
    os_name, arch, variant = platform
    config = {
        "architecture": arch,
        "os": os_name,
        **({"variant": variant} if variant else {}),
        "created": EPOCH,
        "config": {"Env": DEFAULT_ENV, **(config_overrides or {})},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": EPOCH, "created_by": f"frozen-tasks test layer {i}"}
            for i in range(len(layers))
        ],
    }
    config_bytes = _dumps(config)
    config_digest = push_blob(session, registry_url, repo, config_bytes)
    layer_types = [
        _OCI_LAYER_TYPES.get(layer.media_type, layer.media_type)
        if fmt == "oci"
        else layer.media_type
        for layer in layers
    ]
    for layer in layers:
        push_blob(session, registry_url, repo, layer.blob)
    manifest = _dumps(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {
                "mediaType": config_type,
                "size": len(config_bytes),
                "digest": config_digest,
            },
            "layers": [
                {"mediaType": media_type, "size": layer.size, "digest": layer.digest}
                for layer, media_type in zip(layers, layer_types, strict=True)
            ],
        }
    )
    digest = push_manifest(
        session, registry_url, repo, tag or sha256_digest(manifest), manifest, manifest_type
    )
    assert digest == sha256_digest(manifest), (digest, manifest)
    return PushedImage(
        repo=repo,
        tag=tag,
        manifest_digest=digest,
        manifest_bytes=manifest,
        media_type=manifest_type,
        config_digest=config_digest,
        config_bytes=config_bytes,
        config_media_type=config_type,
        layers=list(layers),
        layer_media_types=layer_types,
        platform=platform,
    )


def push_hello_image(
    registry_url: str,
    repo: str = "hello",
    tag: str | None = "1",
    *,
    fmt: Format = "docker",
    session: requests.Session | None = None,
) -> PushedImage:
    """A busybox image whose Cmd prints HELLO_MESSAGE."""
    cmd = {"Cmd": ["/bin/echo", HELLO_MESSAGE]}
    return push_image(
        registry_url, repo, tag, [busybox_layer()], fmt=fmt, config_overrides=cmd, session=session
    )


def push_index(
    registry_url: str,
    repo: str,
    tag: str | None,
    images: list[PushedImage],
    *,
    fmt: Format = "oci",
    session: requests.Session | None = None,
) -> PushedIndex:
    """Push an OCI index or Docker manifest list of images already pushed to `repo`."""
    session = session or registry_session()
    media_type = _FORMATS[fmt][2]
    entries = []
    for image in images:
        config = image.config
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if "variant" in config:
            platform["variant"] = config["variant"]
        entries.append(
            {
                "mediaType": image.media_type,
                "size": len(image.manifest_bytes),
                "digest": image.manifest_digest,
                "platform": platform,
            }
        )
    manifest = _dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries})
    digest = push_manifest(
        session, registry_url, repo, tag or sha256_digest(manifest), manifest, media_type
    )
    assert digest == sha256_digest(manifest), (digest, manifest)
    return PushedIndex(repo, tag, digest, manifest, media_type, list(images))


def push_schema1(src_registry: Registry, dst_registry: Registry, repo: str, tag: str) -> str:
    """Copy repo:tag into a schema1-enabled registry as a signed schema1 manifest (skopeo).

    Returns the digest the destination reports for the schema1 manifest.
    """
    skopeo(
        "copy",
        "--format",
        "v2s1",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{src_registry.host}/{repo}:{tag}",
        f"docker://{dst_registry.host}/{repo}:{tag}",
    )
    response = _check(
        requests.get(
            f"{dst_registry.url}/v2/{repo}/manifests/{tag}",
            headers={"Accept": SCHEMA1_SIGNED},
            timeout=30,
        )
    )
    return response.headers["Docker-Content-Digest"]
