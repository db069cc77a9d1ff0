"""Mirrors: a real pull-through cache (docker-registry in proxy mode) in front of a registry.

This is the way a fleet of CI machines shares one layer cache: point every machine at the
mirror (images.json `mirrors`, or $FROZEN_MIRRORS); the upstream can even be gone.
"""

from __future__ import annotations

import json
from pathlib import Path

from support.frozen import Project, blob_gets
from support.images import push_hello_image
from support.process import free_port
from support.proxy import Answer, FaultProxy
from support.registry import BASIC_USERS, Registry, start_registry


def _manifest(project: Project) -> list[dict]:
    return json.loads((project.output / "manifest.json").read_text())


def test_pull_through_cache_serves_when_upstream_is_gone(tmp_path: Path) -> None:
    upstream = start_registry(tmp_path / "upstream")
    mirror = start_registry(tmp_path / "mirror", extra={"proxy": {"remoteurl": upstream.url}})
    try:
        image = push_hello_image(upstream.url, "fleet/hello", "1")
        ref = f"{upstream.host}/fleet/hello:1@{image.manifest_digest}"
        first = Project(tmp_path / "machine1")
        first.write_images([ref], registries={upstream.host: {"mirrors": [mirror.url]}})
        first.doit("frozen")
        assert len(blob_gets(mirror.request_log())) == 2, "config and layer through the mirror"
        assert _manifest(first)[0]["RepoTags"] == [f"{upstream.host}/fleet/hello:1"]

        upstream.stop()
        second = Project(tmp_path / "machine2")  # another machine: empty cache, same mirror
        second.extra_env = {"FROZEN_MIRRORS": f"{upstream.host}={mirror.url}"}
        second.write_images([ref])
        second.doit("frozen")
        assert (second.output / "manifest.json").read_bytes() == (
            first.output / "manifest.json").read_bytes()
    finally:
        mirror.stop()
        upstream.stop()


def test_a_mirror_cannot_substitute_content(registry: Registry, tmp_path: Path) -> None:
    image = push_hello_image(registry.url, "fleet/evil", "1")
    lying = FaultProxy(registry.url).start()

    def flip(answer: Answer) -> None:
        if answer.status == 200 and "/blobs/" in answer.path:
            answer.body = answer.body[:-1] + bytes([answer.body[-1] ^ 1])

    lying.fault = flip
    try:
        project = Project(tmp_path)
        project.extra_env = {"FROZEN_BACKOFF": "0.01"}
        project.write_images([f"{registry.host}/fleet/evil:1@{image.manifest_digest}"],
                             registries={registry.host: {"mirrors": [f"http://{lying.host}"]}})
        project.doit("frozen")
        assert lying.requests_for(image.layer_digests[0]), "the mirror was asked first"
        from frozen_tasks.store import sha256_file

        layer = project.output / "blobs" / "sha256" / image.layer_digests[0][7:]
        assert sha256_file(layer)[0] == image.layer_digests[0], "upstream's bytes, verified"
    finally:
        lying.stop()


def test_a_mirror_that_is_down_is_skipped(registry: Registry, tmp_path: Path) -> None:
    image = push_hello_image(registry.url, "fleet/down", "1")
    project = Project(tmp_path)
    project.extra_env = {"FROZEN_BACKOFF": "0.01"}
    dead = f"http://127.0.0.1:{free_port()}"
    project.write_images([f"{registry.host}/fleet/down:1@{image.manifest_digest}"],
                         registries={registry.host: {"mirrors": [dead]}})
    project.doit("frozen")
    assert _manifest(project)[0]["Config"].endswith(image.config_digest[7:])


def test_upstream_credentials_never_reach_the_mirror(tmp_path: Path) -> None:
    from support.client import registry_session
    from support.registry import start_token_registry

    (tmp_path / "private").mkdir()
    upstream = start_token_registry(tmp_path / "private", dict(BASIC_USERS))
    user, password = next(iter(BASIC_USERS.items()))
    cache = start_registry(tmp_path / "cache", extra={"proxy": {
        "remoteurl": upstream.url, "username": user, "password": password}})
    front = FaultProxy(cache.url).start()
    try:
        image = push_hello_image(upstream.url, "private/app", "1",
                                 session=registry_session((user, password)))
        project = Project(tmp_path / "project")
        project.login(upstream.host, user, password)
        project.write_images([f"{upstream.host}/private/app:1@{image.manifest_digest}"],
                             registries={upstream.host: {"mirrors": [f"http://{front.host}"]}})
        project.doit("frozen")
        assert front.seen, "pulled through the mirror"
        assert not any(s.authorization for s in front.seen), "no Authorization to the mirror"
        assert len(blob_gets(cache.request_log())) == 2, "served by the mirror"
    finally:
        front.stop()
        cache.stop()
        upstream.stop()
