"""Content that does not match its digest is never stored, never linked, and said clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.frozen import Project
from support.images import PushedImage, push_hello_image
from support.proxy import Answer, FaultProxy
from support.registry import Registry


@pytest.fixture(scope="module")
def image(registry: Registry) -> PushedImage:
    return push_hello_image(registry.url, "verify/hello", "1")


def _flip_last_byte(answer: Answer) -> None:
    if answer.status == 200 and answer.body:
        answer.body = answer.body[:-1] + bytes([answer.body[-1] ^ 1])


def _cached(project: Project, digest: str) -> Path:
    return project.cache / "blobs" / "sha256" / digest.removeprefix("sha256:")


def test_manifest_not_matching_its_pin_is_refused(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    proxy.fault = lambda a: _flip_last_byte(a) if "/manifests/" in a.path else None
    project = Project(tmp_path)
    project.write_images([f"{proxy.host}/verify/hello:1@{image.manifest_digest}"])
    result = project.doit("frozen", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "hashes to sha256:" in text and f"not {image.manifest_digest}" in text
    assert "Traceback" not in text
    assert not _cached(project, image.manifest_digest).exists()
    assert not (project.root / "frozen" / "manifest.json").exists()


def test_manifest_not_matching_docker_content_digest_is_refused(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    proxy.fault = lambda a: _flip_last_byte(a) if "/manifests/" in a.path else None
    project = Project(tmp_path)
    project.write_images([f"{proxy.host}/verify/hello:1"])
    result = project.doit("frozen", check=False)
    assert result.returncode != 0
    assert f"not {image.manifest_digest}" in result.stdout + result.stderr


def test_corrupted_blob_is_never_stored_and_a_clean_rerun_succeeds(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    layer = image.layer_digests[0]
    proxy.fault = lambda a: _flip_last_byte(a) if a.path.endswith(layer) else None
    project = Project(tmp_path)
    project.write_images([f"{proxy.host}/verify/hello:1@{image.manifest_digest}"])
    result = project.doit("frozen", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert layer in text and "hashes to" in text and "Traceback" not in text
    gets = proxy.requests_for(layer)
    assert len(gets) > 1, "a bad body is retried"
    assert not _cached(project, layer).exists()
    partials = list((project.cache / "blobs" / "sha256").glob(".*.partial"))
    assert partials == [], "no partial file is left behind"

    proxy.fault = None
    project.doit("frozen")
    assert _cached(project, layer).is_file()
    manifest = (project.root / "frozen" / "manifest.json").read_text()
    assert layer.removeprefix("sha256:") in manifest


def test_a_corrupted_cache_blob_is_detected_and_fetched_again(
    registry: Registry, image: PushedImage, tmp_path: Path
) -> None:
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/verify/hello:1@{image.manifest_digest}"])
    project.doit("frozen")
    layer = _cached(project, image.layer_digests[0])
    data = bytearray(layer.read_bytes())
    data[100] ^= 1
    layer.write_bytes(bytes(data))  # same inode, new mtime: the recorded stat no longer matches
    before = len(registry.request_log())
    project.doit("frozen")
    refetched = [line for line in registry.request_log()[before:]
                 if line.endswith(image.layer_digests[0])]
    assert len(refetched) == 1
    from frozen_tasks.store import sha256_file

    assert sha256_file(_cached(project, image.layer_digests[0]))[0] == image.layer_digests[0]
    output = project.root / "frozen" / "blobs" / "sha256" / image.layer_digests[0][7:]
    assert sha256_file(output)[0] == image.layer_digests[0]


def test_a_verified_blob_is_not_hashed_again_by_another_project(
    registry: Registry, image: PushedImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new project sharing a full cache trusts blobs whose recorded stat holds."""
    import frozen_tasks.store as store_module
    from frozen_tasks.store import Store

    first = Project(tmp_path / "first")
    first.write_images([f"{registry.host}/verify/hello:1@{image.manifest_digest}"])
    first.doit("frozen")
    store = Store(first.cache)
    hashed: list[str] = []
    real = store_module.sha256_file

    def counting(path):
        hashed.append(str(path))
        return real(path)

    monkeypatch.setattr(store_module, "sha256_file", counting)
    assert all(store.verify(d) for d in [image.config_digest, *image.layer_digests])
    assert hashed == [], "verified at write time: not read again"
    layer = store.path(image.layer_digests[0])
    layer.write_bytes(layer.read_bytes())  # same bytes, new mtime: checked once more
    assert store.verify(image.layer_digests[0]) and len(hashed) == 1
    assert store.verify(image.layer_digests[0]) and len(hashed) == 1
