"""Docker image manifest v2, schema 1: canonical digest, layers and a synthesized image config.

Schema 1 manifests are served as ``application/vnd.docker.distribution.manifest.v1+prettyjws``
(signed: a libtrust "pretty" JWS, the manifest JSON plus a ``signatures`` list) or
``application/vnd.docker.distribution.manifest.v1+json`` (unsigned). They carry no image
config: ``fsLayers`` (blob digests) and ``history`` (one legacy v1 image JSON per layer) are
listed top layer first, and a puller rebuilds the config the way moby's ``pullSchema1`` does.

Digests are "sha256:<64 lowercase hex>" strings. JWS signatures are not verified: docker does
not trust them either; the manifest digest is what pins the content.
"""

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from frozen_tasks.errors import DigestMismatchError, ManifestError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_V1_ID = re.compile(r"[0-9a-f]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
# Keys of a v1Compatibility entry that moby's MakeConfigFromV1Config drops.
_V1_ONLY_KEYS = frozenset({"id", "parent", "Size", "parent_id", "layer_id", "throwaway"})


@dataclass(frozen=True)
class Schema1Layer:
    """One schema1 layer.

    ``digest``: the ``blobSum``, "sha256:<64 hex>" of the gzip layer blob.
    ``v1_compat``: the layer's parsed ``v1Compatibility`` JSON object.
    ``empty``: True for a ``"throwaway": true`` layer, which moby neither downloads nor adds to
    ``rootfs.diff_ids`` (it still gets a history entry, with ``empty_layer``).
    """

    digest: str
    v1_compat: dict[str, Any]
    empty: bool


def _load_object(data: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:  # also UnicodeDecodeError
        raise ManifestError(f"schema1 manifest: {what} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ManifestError(f"schema1 manifest: {what} is not a JSON object")
    return value


def _base64url(value: Any, what: str) -> bytes:
    """Decode JOSE base64url without padding (libtrust also skips spaces and newlines)."""
    text = value.replace("\n", "").replace(" ", "") if isinstance(value, str) else None
    if text is None or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ManifestError(f"schema1 manifest: {what} is not a base64url string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _text(v1: dict[str, Any], key: str, where: str) -> str:
    """A string field of a v1Compatibility object; "" when absent or null."""
    value = v1.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ManifestError(f"schema1 manifest: {where}: {key} must be a string")
    return value


def schema1_payload(raw: bytes) -> bytes:
    """Return the canonical bytes of a schema1 manifest: what its digest covers.

    Signed manifests: ``raw[:formatLength] + formatTail``, both read from every
    ``signatures[*].protected`` header (base64url JSON; all signatures must agree), i.e. the
    manifest without its ``signatures``. Unsigned manifests (no ``signatures`` key) are their
    own canonical form. Parse the manifest from these bytes, not from ``raw``: whatever lies
    outside them is not covered by the digest.
    """
    signatures = _load_object(raw, "manifest").get("signatures")
    if signatures is None:
        return raw
    if not isinstance(signatures, list) or not signatures:
        raise ManifestError("schema1 manifest: signatures must be a non-empty list")
    formats = set()
    for index, signature in enumerate(signatures):
        where = f"signatures[{index}]"
        if not isinstance(signature, dict):
            raise ManifestError(f"schema1 manifest: {where} is not a JSON object")
        protected = _load_object(
            _base64url(signature.get("protected"), f"{where}.protected"), f"{where}.protected"
        )
        length = protected.get("formatLength")
        if type(length) is not int or not 0 < length <= len(raw):
            raise ManifestError(
                f"schema1 manifest: {where}.protected.formatLength must be an integer "
                f"between 1 and the manifest size ({len(raw)}), got {length!r}"
            )
        tail = _base64url(protected.get("formatTail"), f"{where}.protected.formatTail")
        formats.add((length, tail))
    if len(formats) > 1:
        raise ManifestError("schema1 manifest: signatures disagree on formatLength/formatTail")
    ((length, tail),) = formats
    payload = raw[:length] + tail
    _load_object(payload, "signed payload (formatLength + formatTail)")
    return payload


def schema1_digest(raw: bytes, expected: str | None = None) -> str:
    """Return the manifest digest ("sha256:<64 hex>") of a schema1 manifest's raw bytes.

    It is the sha256 of ``schema1_payload(raw)``, as registries report in
    ``Docker-Content-Digest``. When ``expected`` (a digest the manifest was pulled by) is
    given and differs, raise DigestMismatchError.
    """
    digest = "sha256:" + hashlib.sha256(schema1_payload(raw)).hexdigest()
    if expected is not None and digest != expected:
        raise DigestMismatchError(
            f"schema1 manifest: its signed payload hashes to {digest}, not to the requested "
            f"{expected}; the registry served other content than the digest names"
        )
    return digest


def _entries(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Validate the manifest's structure; return (blobSum, v1Compatibility), top layer first."""
    version = manifest.get("schemaVersion")
    if version != 1 or isinstance(version, bool):
        raise ManifestError(f"schema1 manifest: unsupported schemaVersion {version!r}")
    fs_layers, history = manifest.get("fsLayers"), manifest.get("history")
    if not isinstance(fs_layers, list) or not isinstance(history, list):
        raise ManifestError("schema1 manifest: fsLayers and history must be lists")
    if len(fs_layers) != len(history):
        raise ManifestError(
            f"schema1 manifest: {len(fs_layers)} fsLayers but {len(history)} history entries"
        )
    if not fs_layers:
        raise ManifestError("schema1 manifest: no fsLayers")
    entries = []
    for index, (fs_layer, entry) in enumerate(zip(fs_layers, history, strict=True)):
        blob_sum = fs_layer.get("blobSum") if isinstance(fs_layer, dict) else None
        if not isinstance(blob_sum, str) or not _DIGEST.fullmatch(blob_sum):
            raise ManifestError(
                f"schema1 manifest: fsLayers[{index}].blobSum {blob_sum!r} is not sha256:<64 hex>"
            )
        where = f"history[{index}].v1Compatibility"
        v1_text = entry.get("v1Compatibility") if isinstance(entry, dict) else None
        if not isinstance(v1_text, str):
            raise ManifestError(f"schema1 manifest: {where} must be a string")
        v1 = _load_object(v1_text, where)
        if not _V1_ID.fullmatch(_text(v1, "id", where)):
            raise ManifestError(f"schema1 manifest: {where}: id is not 64 hex characters")
        entries.append((blob_sum, v1))
    return entries


def _image_os(top_v1: dict[str, Any]) -> str:
    return _text(top_v1, "os", "history[0].v1Compatibility") or "linux"


def schema1_layers(manifest: dict[str, Any]) -> list[Schema1Layer]:
    """Return the layers of a parsed schema1 manifest, bottom layer first.

    Follows moby's pullSchema1: schemaVersion 1, as many fsLayers as history entries (at least
    one), well-formed blobSums and v1 ids, each layer's ``parent`` the id of the layer below
    (the base has none, except on Windows). A layer repeating the id of the one below it is
    dropped; an id repeated elsewhere is an error. Layers whose v1Compatibility says
    ``"throwaway": true`` are ``empty``; nothing else (not even the well-known empty gzip
    blobSum) makes a layer empty.
    """
    entries = _entries(manifest)
    image_os = _image_os(entries[0][1])
    ids: list[str] = []
    layers = []
    for index in reversed(range(len(entries))):
        blob_sum, v1 = entries[index]
        where = f"history[{index}].v1Compatibility"
        if ids and v1["id"] == ids[-1]:
            continue
        if v1["id"] in ids:
            raise ManifestError(f"schema1 manifest: layer id {v1['id']} appears more than once")
        parent = _text(v1, "parent", where)
        # A Windows base layer may name a parent that is not in the manifest.
        if parent != (ids[-1] if ids else "") and (ids or image_os != "windows"):
            raise ManifestError(
                f"schema1 manifest: {where}: parent {parent!r} is not the id of the layer below"
            )
        throwaway = v1.get("throwaway")
        if throwaway is not None and not isinstance(throwaway, bool):
            raise ManifestError(f"schema1 manifest: {where}: throwaway must be a boolean")
        ids.append(v1["id"])
        layers.append(Schema1Layer(digest=blob_sum, v1_compat=v1, empty=bool(throwaway)))
    return layers


def schema1_platform(manifest: dict[str, Any]) -> tuple[str, str]:
    """Return (os, architecture) of a parsed schema1 manifest.

    The architecture is the manifest's ``architecture`` (else the top v1Compatibility's); the
    os is the top v1Compatibility's ``os``, "linux" when absent.
    """
    top_v1 = _entries(manifest)[0][1]
    architecture = manifest.get("architecture") or top_v1.get("architecture")
    if not isinstance(architecture, str):
        raise ManifestError(f"schema1 manifest: bad or missing architecture {architecture!r}")
    return _image_os(top_v1), architecture


def _created_by(v1: dict[str, Any], where: str) -> str:
    """container_config.Cmd joined by spaces (Cmd may be a list of strings or one string)."""
    container_config = v1.get("container_config")
    if container_config is None:
        return ""
    if not isinstance(container_config, dict):
        raise ManifestError(f"schema1 manifest: {where}: container_config is not an object")
    cmd = container_config.get("Cmd")
    if cmd is None or isinstance(cmd, str):
        return cmd or ""
    if not isinstance(cmd, list) or not all(isinstance(arg, str) for arg in cmd):
        raise ManifestError(f"schema1 manifest: {where}: container_config.Cmd is malformed")
    return " ".join(cmd)


def schema1_config(manifest: dict[str, Any], diff_ids: list[str]) -> bytes:
    """Synthesize the image config JSON docker creates when it pulls a schema1 manifest.

    ``diff_ids``: the "sha256:<64 hex>" digests of the uncompressed non-empty layers, bottom
    first (one per non-``empty`` entry of ``schema1_layers``). As moby's MakeConfigFromV1Config:
    the top v1Compatibility without id/parent/Size/parent_id/layer_id/throwaway, plus
    ``rootfs`` {"type": "layers", "diff_ids": diff_ids} and one ``history`` entry per layer
    (created, author, comment, created_by = container_config.Cmd joined by spaces,
    empty_layer for throwaway layers). Unlike moby, missing ``os``/``architecture``/``config``
    are filled in (from schema1_platform, and {}) for ``docker load``. Output is compact JSON
    with sorted keys, so equal inputs give equal bytes.
    """
    layers = schema1_layers(manifest)
    expected = sum(not layer.empty for layer in layers)
    if len(diff_ids) != expected:
        raise ManifestError(
            f"schema1 manifest has {expected} non-empty layers but {len(diff_ids)} diff_ids "
            "were given"
        )
    for diff_id in diff_ids:
        if not isinstance(diff_id, str) or not _DIGEST.fullmatch(diff_id):
            raise ManifestError(f"diff_id {diff_id!r} is not sha256:<64 hex>")
    history = []
    for layer in layers:
        where = f"v1Compatibility of layer {layer.v1_compat['id']}"
        entry: dict[str, Any] = {
            key: value
            for key in ("created", "author", "comment")
            if (value := _text(layer.v1_compat, key, where))
        }
        created_by = _created_by(layer.v1_compat, where)
        if created_by:
            entry["created_by"] = created_by
        if layer.empty:
            entry["empty_layer"] = True
        history.append(entry)
    config = {k: v for k, v in layers[-1].v1_compat.items() if k not in _V1_ONLY_KEYS}
    image_os, architecture = schema1_platform(manifest)
    for key, default in (("os", image_os), ("architecture", architecture), ("config", {})):
        if not config.get(key):
            config[key] = default
    config["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    config["history"] = history
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
