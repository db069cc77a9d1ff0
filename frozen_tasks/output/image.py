"""One image's files in the output directory, hard-linked from the cache.

Writes ``blobs/sha256/`` (manifest, config, layers) and the seed's legacy layer directories,
and returns a stamp: the image's manifest.json entry, its index.json descriptors, its
``repositories`` part and the (size, mtime, inode) of every file written.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

from .. import manifest as mf
from ..reference import parse_reference
from ..schema1 import schema1_config, schema1_payload
from ..store import CHUNK, Store, blob_relpath, file_stat
from .files import link_or_copy

# The seed's JSON for layers that are not the image itself, taken from docker save output.
_LEGACY_LAYER_JSON = {
    "created": "0001-01-01T00:00:00Z",
    "container_config": {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    },
}


def legacy_layer_ids(layer_digests: list[str]) -> list[str]:
    """The seed's fake v1 layer IDs: sha256 of ``parent + "\\n" + digest + "\\n"``."""
    ids, parent = [], ""
    for digest in layer_digests:
        parent = hashlib.sha256(f"{parent}\n{digest}\n".encode()).hexdigest()
        ids.append(parent)
    return ids


def diff_id(path: Path) -> str:
    """``sha256:`` of a layer's uncompressed tar (gzip is undone while reading)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 32) if head == b"\x1f\x8b" else None
        while chunk := f.read(CHUNK):
            hasher.update(inflate.decompress(chunk) if inflate else chunk)
        if inflate:
            hasher.update(inflate.flush())
    return "sha256:" + hasher.hexdigest()


_OCI_LAYER_TYPES = {
    mf.DOCKER_LAYER_GZIP: mf.OCI_LAYER_GZIP,
    mf.DOCKER_LAYER_TAR: mf.OCI_LAYER_TAR,
}


def _schema1_config(record: dict[str, Any], store: Store) -> dict[str, Any]:
    """Docker does this on pull: a config from v1Compatibility, diff_ids from the layers."""
    raw = store.read_bytes(record["manifest"]["digest"])
    body = mf.parse_json(schema1_payload(raw), "manifest")
    diff_ids = [diff_id(store.path(layer["digest"])) for layer in record["layers"]]
    config = schema1_config(body, diff_ids)
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    store.put_bytes(digest, config)
    return {"mediaType": mf.OCI_CONFIG, "size": len(config), "digest": digest}


def _oci_manifest(record: dict[str, Any], store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    """(descriptor of the OCI manifest for the OCI layout, config descriptor).

    An OCI manifest is used as fetched. A Docker one is rewritten with OCI media types, as
    ``skopeo copy`` to ``oci:`` does: skopeo (before 1.10) ignores other types in index.json.
    """
    media_type = record["manifest"]["mediaType"]
    if media_type == mf.OCI_MANIFEST:
        return {k: record["manifest"][k] for k in ("mediaType", "digest", "size")}, record["config"]
    if media_type in mf.SCHEMA1_TYPES:
        config = _schema1_config(record, store)
    else:
        config = {**record["config"], "mediaType": mf.OCI_CONFIG}
    layers = [
        {
            "mediaType": _OCI_LAYER_TYPES.get(layer["mediaType"], layer["mediaType"]),
            "digest": layer["digest"],
            "size": layer["size"]
            if layer["size"] is not None
            else store.path(layer["digest"]).stat().st_size,
        }
        for layer in record["layers"]
    ]
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": config, "layers": layers},
        indent=2,
    ).encode()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    store.put_bytes(digest, raw)
    return {"mediaType": mf.OCI_MANIFEST, "digest": digest, "size": len(raw)}, config


def _stored(store: Store, data: bytes) -> str:
    """Put small generated content in the cache; return its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    store.put_bytes(digest, data)
    return digest


def assemble_image(out: Path, record: dict[str, Any], tags: list[str], store: Store) -> dict:
    """Link one image's blobs into ``out`` and write its legacy directories; return its stamp."""
    descriptor, config = _oci_manifest(record, store)
    layers = [layer["digest"] for layer in record["layers"]]
    # Every file is a hard link to a cache file, the small legacy ones included (stored by
    # their digest): images sharing a legacy directory then link the very same inode, and the
    # stats recorded in each image's stamp stay true whichever image linked last.
    files: dict[str, str] = {}
    for digest in [descriptor["digest"], config["digest"], *layers]:
        files[blob_relpath(digest)] = digest
    ids = legacy_layer_ids(layers)
    version = _stored(store, b"1.0")
    parent = None
    for layer_id, digest in zip(ids, layers, strict=True):
        legacy = {"id": layer_id, **({"parent": parent} if parent else {}), **_LEGACY_LAYER_JSON}
        files[f"{layer_id}/VERSION"] = version
        files[f"{layer_id}/json"] = _stored(store, json.dumps(legacy).encode())
        files[f"{layer_id}/layer.tar"] = digest
        parent = layer_id
    for rel, digest in files.items():
        link_or_copy(store.path(digest), out / rel)
    ref = parse_reference(record["ref"])
    repositories: dict[str, dict[str, str]] = {}
    index = []
    for tag in tags:
        name, _, tag_part = tag.rpartition(":")
        if ids:
            repositories.setdefault(name, {})[tag_part] = ids[-1]
        index.append(
            {
                **descriptor,
                "annotations": {
                    "io.containerd.image.name": str(parse_reference(tag)),
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        )
    if not tags:
        index.append(
            {
                **descriptor,
                "annotations": {
                    "io.containerd.image.name": f"{ref.full_name}@{descriptor['digest']}"
                },
            }
        )
    return {
        "key": record["key"],
        "manifest_json": {
            "Config": blob_relpath(config["digest"]),
            "RepoTags": list(tags),
            "Layers": [blob_relpath(d) for d in layers],
        },
        "index": index,
        "repositories": repositories,
        "files": {rel: file_stat(out / rel) for rel in sorted(files)},
        "warnings": record["warnings"],
    }
