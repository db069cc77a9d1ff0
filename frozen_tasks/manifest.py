"""Manifest media types and shapes.

What each kind of manifest points at (its children) and how a platform is picked from an index
are small jq programs in one table, as the seed script selected fields with the jq command.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from .errors import ManifestError
from .platform import Platform
from .reference import DIGEST

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_V1 = "application/vnd.docker.distribution.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_V2})
SCHEMA1_TYPES = frozenset({DOCKER_V1_SIGNED, DOCKER_V1})

#: One Accept header listing every manifest kind we understand, most preferred first.
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_V2, DOCKER_V1_SIGNED, DOCKER_V1])

DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable."

# A platform entry normalised as containerd compares them: arm64 is v8, arm is v7 unless said.
_NORM = (
    "def norm: {os: .os, architecture: .architecture, variant: ("
    '  if .architecture == "arm64" then ((.variant // "") | if . == "" then "v8" else . end)'
    '  elif .architecture == "arm" then ((.variant // "") | if . == "" then "v7" else . end)'
    '  else (.variant // "") end)};'
)

#: The manifest-shape knowledge, as jq programs. ``children`` lists the descriptors a manifest
#: of each media type points at; ``platforms`` and ``select_platform`` read an index.
JQ_PROGRAMS: dict[str, str] = {
    OCI_INDEX: "[.manifests[]]",
    DOCKER_LIST: "[.manifests[]]",
    OCI_MANIFEST: "[.config] + .layers",
    DOCKER_V2: "[.config] + .layers",
    DOCKER_V1_SIGNED: "[.fsLayers[] | {digest: .blobSum}]",
    DOCKER_V1: "[.fsLayers[] | {digest: .blobSum}]",
    "platforms": '[.manifests[] | .platform // empty | select(.os != "unknown")'
    ' | [.os, .architecture, .variant // empty] | join("/")] | unique',
    "select_platform": _NORM + "[.manifests[] | select((.platform // {} | norm) == $want)] | first",
}


@functools.cache
def _program(name: str, want: Platform | None = None) -> Any:
    """A jq program of the table, compiled on first use (a no-op run imports no jq); ``want``
    is the platform ``select_platform`` looks for (its ``$want``)."""
    import jq

    args = None if want is None else {"want": want.normalized()}
    return jq.compile(JQ_PROGRAMS[name], args=args)


def media_type_of(raw: bytes, content_type: str | None) -> str:
    """The manifest's media type: the Content-Type header if it names one, else the body's."""
    header = (content_type or "").split(";")[0].strip()
    if header in INDEX_TYPES | IMAGE_TYPES | SCHEMA1_TYPES:
        return header
    body = parse_json(raw, "manifest")
    if body.get("mediaType") in INDEX_TYPES | IMAGE_TYPES:
        return body["mediaType"]
    if body.get("schemaVersion") == 1:
        return DOCKER_V1_SIGNED if "signatures" in body else DOCKER_V1
    return OCI_INDEX if "manifests" in body else OCI_MANIFEST


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    """Decode a JSON object, raising ManifestError (not a traceback) on anything else."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ManifestError(f"the {what} is not a JSON object")
    return body


def children(manifest: dict[str, Any], media_type: str) -> list[dict[str, Any]]:
    """The descriptors a manifest points at, each checked to have a valid digest and size."""
    if media_type not in INDEX_TYPES | IMAGE_TYPES | SCHEMA1_TYPES:
        raise ManifestError(f"unsupported manifest media type {media_type!r}")
    try:
        descriptors = _program(media_type).input_value(manifest).first()
    except ValueError as exc:
        raise ManifestError(f"malformed {media_type} manifest: {exc}") from None
    for desc in descriptors:
        check_descriptor(desc, media_type)
    return descriptors


def check_descriptor(desc: Any, where: str) -> None:
    """Reject descriptors whose digest could escape a path or whose size is not a count."""
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise ManifestError(f"malformed descriptor in {where}: {desc!r}")
    if not DIGEST.fullmatch(desc["digest"]):
        raise ManifestError(f"unsupported or malformed digest {desc['digest']!r} in {where}")
    size = desc.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ManifestError(f"descriptor {desc['digest']} in {where} has a bad size {size!r}")


def select_platform(index: dict[str, Any], media_type: str, platform: Platform) -> dict[str, Any]:
    """The index entry for ``platform``; ManifestError listing the platforms there are if none."""
    children(index, media_type)
    found = _program("select_platform", platform).input_value(index).first()
    if found is None:
        available = _program("platforms").input_value(index).first()
        raise ManifestError(
            f"no manifest for platform {platform} in this index; it has: "
            f'{", ".join(available) or "no platform entries"}. Set "platform" for this image '
            "in images.json to one of them."
        )
    return found


def check_layer(desc: dict[str, Any]) -> str | None:
    """Refuse layers we cannot ship; return a warning for ones older daemons cannot load."""
    media_type = desc.get("mediaType", "")
    if (
        media_type == DOCKER_LAYER_FOREIGN
        or media_type.startswith(_NONDISTRIBUTABLE)
        or desc.get("urls")
    ):
        raise ManifestError(
            f"layer {desc['digest']} is a foreign (non-distributable) layer ({media_type}); "
            "its content lives outside the registry and cannot be frozen. Use an image "
            "built without foreign layers."
        )
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return (
            f"layer {desc['digest']} is zstd-compressed; docker before 23.0 and other "
            "older consumers cannot load it"
        )
    return None


@dataclass(frozen=True)
class Fetched:
    """A manifest as received: raw bytes, media type, and its verified ``sha256:`` digest."""

    raw: bytes
    media_type: str
    digest: str

    @property
    def content(self) -> bytes:
        """The bytes the digest covers: all of them, but a signed schema1's payload only."""
        if self.media_type not in SCHEMA1_TYPES:
            return self.raw
        from .schema1 import schema1_payload

        return schema1_payload(self.raw)
