"""TLS verified by default, a custom CA per registry or REQUESTS_CA_BUNDLE; HTTP proxies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.client import registry_session
from support.frozen import Project
from support.images import PushedImage, push_hello_image
from support.proxy import FaultProxy
from support.registry import Registry, start_tls_registry


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, Path, PushedImage]]:
    registry, ca = start_tls_registry(tmp_path_factory.mktemp("tls"))
    try:
        session = registry_session()
        session.verify = str(ca)
        session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would win
        image = push_hello_image(registry.url, "tls/hello", "1", session=session)
        yield registry, ca, image
    finally:
        registry.stop()


def _project(tmp_path: Path, registry: Registry, image: PushedImage, **settings) -> Project:
    project = Project(tmp_path)
    project.extra_env = {"FROZEN_BACKOFF": "0.01", "FROZEN_ATTEMPTS": "2"}
    project.write_images([f"{registry.host}/tls/hello:1@{image.manifest_digest}"],
                         registries={registry.host: settings})
    return project


def test_untrusted_certificate_is_refused_with_the_fix(tls, tmp_path: Path) -> None:
    registry, _, image = tls
    project = _project(tmp_path, registry, image, insecure=False)
    result = project.doit("frozen", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in text
    assert "CERTIFICATE_VERIFY_FAILED" in text and '"ca": "ca.pem"' in text


def test_registry_ca_from_images_json(tls, tmp_path: Path) -> None:
    registry, ca, image = tls
    shutil.copy(ca, tmp_path / "ca.pem")
    project = _project(tmp_path, registry, image, ca="ca.pem")
    project.doit("frozen")
    assert (project.output / "manifest.json").is_file()


def test_requests_ca_bundle(tls, tmp_path: Path) -> None:
    registry, ca, image = tls
    project = _project(tmp_path, registry, image, insecure=False)
    project.extra_env["REQUESTS_CA_BUNDLE"] = str(ca)
    project.doit("frozen")
    assert (project.output / "manifest.json").is_file()


def test_http_proxy_and_no_proxy(registry: Registry, tmp_path: Path) -> None:
    image = push_hello_image(registry.url, "tls/proxied", "1")
    forward = FaultProxy("").start()  # a forward proxy: requests send it absolute URLs
    try:
        project = Project(tmp_path / "via-proxy")
        project.extra_env = {"HTTP_PROXY": f"http://{forward.host}", "NO_PROXY": ""}
        project.write_images([f"{registry.host}/tls/proxied:1@{image.manifest_digest}"])
        project.doit("frozen")
        paths = [s.path for s in forward.seen]
        assert f"http://{registry.host}/v2/tls/proxied/blobs/{image.layer_digests[0]}" in paths

        before = len(forward.seen)
        direct = Project(tmp_path / "no-proxy")
        direct.extra_env = {"HTTP_PROXY": f"http://{forward.host}", "NO_PROXY": "127.0.0.1"}
        direct.write_images([f"{registry.host}/tls/proxied:1@{image.manifest_digest}"])
        direct.doit("frozen")
        assert len(forward.seen) == before, "NO_PROXY is honoured"
    finally:
        forward.stop()
