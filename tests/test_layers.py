"""Layer kinds and layer sharing, frozen from a real registry with `doit frozen`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.frozen import Project, blob_gets
from support.images import Layer, PushedImage, make_layer, push_image, sha256_digest
from support.registry import Registry

OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"


def _retyped(layer: Layer, media_type: str) -> Layer:
    return Layer(layer.blob, layer.digest, layer.diff_id, layer.size, media_type)


def _zstd_layer(files: dict[str, Any]) -> Layer:
    """A zstd layer: real zstd when the module is there; the tool only passes the blob on."""
    tar = make_layer(files, compress=None)
    try:
        import zstandard
    except ImportError:
        blob = b"\x28\xb5\x2f\xfd" + b"not really zstd; it is not looked into" + tar.blob
    else:
        blob = zstandard.ZstdCompressor().compress(tar.blob)
    return Layer(blob, sha256_digest(blob), tar.diff_id, len(blob), OCI_LAYER_ZSTD)


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _pinned(registry: Registry, image: PushedImage) -> str:
    return f"{registry.host}/{image.repo}:{image.tag}@{image.manifest_digest}"


def _blob_names(out: Path) -> set[str]:
    return {p.name for p in (out / "blobs" / "sha256").iterdir()}


def test_zstd_layer_is_frozen_with_a_warning(tmp_path: Path, registry: Registry) -> None:
    base = make_layer({"base.txt": b"under the zstd layer"})
    zstd = _zstd_layer({"zstd.txt": b"zstd-compressed content"})
    image = push_image(registry.url, "layers/zstd", "v1", [base, zstd], fmt="oci")
    assert image.layer_media_types[1] == OCI_LAYER_ZSTD
    project = Project(tmp_path)
    project.write_images([_pinned(registry, image)], output="out")

    result = project.doit("frozen")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert zstd.digest in warnings[0] and "layers/zstd:v1" in warnings[0]
    assert "zstd-compressed" in warnings[0] and "older" in warnings[0]

    out = project.output
    tag = f"{registry.host}/layers/zstd:v1"
    (entry,) = _json(out / "manifest.json")
    assert entry["RepoTags"] == [tag]
    assert entry["Layers"] == [f"blobs/sha256/{d[7:]}" for d in (base.digest, zstd.digest)]
    assert (out / entry["Layers"][1]).read_bytes() == zstd.blob, "passed through unchanged"
    (desc,) = _json(out / "index.json")["manifests"]
    assert desc["digest"] == image.manifest_digest, "an OCI manifest is kept as fetched"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == tag
    manifest = _json(out / "blobs" / "sha256" / desc["digest"][7:])
    assert [(layer["mediaType"], layer["digest"]) for layer in manifest["layers"]] == [
        (image.layer_media_types[0], base.digest), (OCI_LAYER_ZSTD, zstd.digest)]


def test_non_distributable_layer_is_refused(tmp_path: Path, registry: Registry) -> None:
    foreign = _retyped(make_layer({"foreign.txt": b"licensed elsewhere"}),
                       OCI_LAYER_NONDIST_GZIP)
    base = make_layer({"base.txt": b"under the foreign layer"})
    image = push_image(registry.url, "layers/foreign", "v1", [base, foreign], fmt="oci")
    assert image.layer_media_types[1] == OCI_LAYER_NONDIST_GZIP
    project = Project(tmp_path)
    project.write_images([_pinned(registry, image)], output="out")

    result = project.doit("frozen", check=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    assert f"image {registry.host}/layers/foreign:v1@{image.manifest_digest}" in text
    assert f"layer {foreign.digest} is a foreign (non-distributable) layer" in text
    assert OCI_LAYER_NONDIST_GZIP in text
    assert not (project.output / "manifest.json").exists()


@pytest.fixture(scope="module")
def shared(registry: Registry) -> dict[str, Any]:
    """Two repositories of one registry whose images share a layer, each with its own too."""
    common = make_layer({"shared.txt": b"in both repositories"})
    only_a = make_layer({"a.txt": b"only in a"})
    only_b = make_layer({"b.txt": b"only in b"})
    a = push_image(registry.url, "layers/share-a", "v1", [common, only_a])
    b = push_image(registry.url, "layers/share-b", "v1", [common, only_b], fmt="oci")
    return {"common": common, "a": a, "b": b}


def test_shared_layer_fetched_once_and_two_tags(
    tmp_path: Path, registry: Registry, shared: dict[str, Any]
) -> None:
    a, b, common = shared["a"], shared["b"], shared["common"]
    project = Project(tmp_path)
    project.write_images([
        {"ref": _pinned(registry, a), "tags": ["layers/a:one", "layers/a:two"]},
        _pinned(registry, b),
    ], output="out")
    before = len(registry.request_log())
    project.doit("frozen")
    gets = blob_gets(registry.request_log()[before:])
    assert len([line for line in gets if line.endswith(common.digest)]) == 1, gets
    expected = {a.config_digest, b.config_digest, *a.layer_digests, *b.layer_digests}
    assert sorted(line.rsplit("/", 1)[1] for line in gets) == sorted(expected)

    out = project.output
    entries = _json(out / "manifest.json")
    assert [e["RepoTags"] for e in entries] == [
        ["layers/a:one", "layers/a:two"], [f"{registry.host}/layers/share-b:v1"]]
    assert entries[0]["Layers"][0] == entries[1]["Layers"][0] == f"blobs/sha256/{common.digest[7:]}"
    repositories = _json(out / "repositories")
    assert set(repositories) == {"layers/a", f"{registry.host}/layers/share-b"}
    assert set(repositories["layers/a"]) == {"one", "two"}
    assert repositories["layers/a"]["one"] == repositories["layers/a"]["two"]
    assert (out / repositories["layers/a"]["one"] / "layer.tar").read_bytes() == a.layers[1].blob
    names = [d["annotations"]["org.opencontainers.image.ref.name"]
             for d in _json(out / "index.json")["manifests"]]
    assert names == ["layers/a:one", "layers/a:two", f"{registry.host}/layers/share-b:v1"]


def test_removed_image_leaves_the_output(
    tmp_path: Path, registry: Registry, shared: dict[str, Any]
) -> None:
    a, b, common = shared["a"], shared["b"], shared["common"]
    project = Project(tmp_path)
    ref_a, ref_b = _pinned(registry, a), _pinned(registry, b)
    project.write_images([ref_a, ref_b], output="out")
    project.doit("frozen")
    out = project.output
    both = _blob_names(out)
    legacy_both = {p.name for p in out.iterdir() if p.is_dir() and p.name != "blobs"}
    repositories = _json(out / "repositories")
    b_name = f"{registry.host}/layers/share-b"
    b_top = repositories[b_name]["v1"]
    b_manifest = _json(out / "index.json")["manifests"][1]["digest"]
    b_only = {b_manifest[7:], b.config_digest[7:], b.layers[1].digest[7:]}
    assert b_only <= both and b_top in legacy_both

    project.write_images([ref_a], output="out")
    project.doit("frozen")
    a_name = f"{registry.host}/layers/share-a"
    assert [e["RepoTags"] for e in _json(out / "manifest.json")] == [[f"{a_name}:v1"]]
    assert set(_json(out / "repositories")) == {a_name}
    index = _json(out / "index.json")["manifests"]
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index] == [
        f"{a_name}:v1"]
    remaining = _blob_names(out)
    assert remaining == both - b_only, "blobs only b used are gone, the shared one stays"
    assert common.digest[7:] in remaining
    assert a.config_digest[7:] in remaining and a.layers[1].digest[7:] in remaining
    assert not (out / b_top).exists(), "b's legacy layer directory is gone too"
    assert len({p.name for p in out.iterdir() if p.is_dir() and p.name != "blobs"}) == 2
