"""Reference → the manifests of one platform, stored in the cache, summed up as a record.

A record is plain JSON (it is also what doit keeps): the reference and platform asked for, the
index digest if the reference named an index, the platform manifest, the config and layer
descriptors in order, and warnings to show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import manifest as mf
from .errors import ManifestError
from .manifest import Fetched
from .spec import ImageSpec
from .store import Store

if TYPE_CHECKING:  # the wire (and requests) is imported only when something is fetched
    from .registry import RegistryClient


def resolve_image(
    spec: ImageSpec,
    client: Callable[[], RegistryClient],
    store: Store,
    digest: str | None = None,
) -> dict[str, Any]:
    """Fetch (and verify) the manifests ``spec`` names; store them; return the record.

    ``digest`` (``sha256:``…) is fetched instead of the tag when given: the pin or the lock's.
    ``client()`` gives the registry client; it is called only when a manifest is not in the
    cache, so resolving from the cache never imports the network stack.
    """
    ref = spec.ref
    what = f"image {ref.familiar()} from {ref.registry}"
    top = _manifest(client, store, ref.repository, digest or ref.reference, what)
    index_digest = None
    current = top
    if top.media_type in mf.INDEX_TYPES:
        index_digest = top.digest
        try:
            chosen = mf.select_platform(
                mf.parse_json(top.raw, "index"), top.media_type, spec.platform
            )
        except ManifestError as exc:
            raise ManifestError(f"{what}: {exc}") from None
        current = _manifest(client, store, ref.repository, chosen["digest"], what)
        if current.media_type in mf.INDEX_TYPES:
            raise ManifestError(
                f"{what}: the index for {spec.platform} points at another index; "
                "nested indexes are not supported"
            )
    # For schema1 only the signed payload is covered by the digest: read nothing else.
    signed = current.media_type in mf.SCHEMA1_TYPES
    body = mf.parse_json(current.content, "manifest")
    record: dict[str, Any] = {
        "key": spec.key,
        "ref": str(ref),
        "platform": str(spec.platform),
        "top": top.digest,
        "index_digest": index_digest,
        "manifest": {
            "digest": current.digest,
            "mediaType": current.media_type,
            "size": len(current.content),
        },
        "config": None,
        "layers": [],
        "warnings": [],
    }
    try:
        if signed:
            from .schema1 import schema1_layers

            record["layers"] = [
                {"digest": layer.digest, "mediaType": mf.DOCKER_LAYER_GZIP, "size": None}
                for layer in schema1_layers(body)
                if not layer.empty
            ]
        else:
            descriptors = mf.children(body, current.media_type)
            record["config"], record["layers"] = descriptors[0], descriptors[1:]
            for layer in record["layers"]:
                warning = mf.check_layer(layer)
                if warning:
                    record["warnings"].append(warning)
    except ManifestError as exc:
        raise ManifestError(f"{what}: {exc}") from None
    return record


def _manifest(
    client: Callable[[], RegistryClient], store: Store, repo: str, reference: str, what: str
) -> Fetched:
    """A manifest from the cache when it is there (a file in the cache is verified content),
    else from the registry, then kept in the cache. A tag is resolved with a HEAD first."""
    cached = reference
    if not reference.startswith("sha256:"):
        # A tag: ask where it points with a HEAD; a manifest already cached is not fetched.
        cached = client().head_manifest(repo, reference, what=what) or ""
    if store.has(cached):
        content = store.read_bytes(cached)
        return Fetched(content, mf.media_type_of(content, None), cached)
    fetched = client().get_manifest(repo, reference, what=what)
    store.put_bytes(fetched.digest, fetched.content)
    return fetched


def record_blobs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The descriptors of every blob a record needs fetched: config first, then layers."""
    return ([record["config"]] if record["config"] else []) + record["layers"]
