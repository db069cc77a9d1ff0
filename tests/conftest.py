"""Fixtures starting real registries, a token server and a private dockerd on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dockerd import DockerDaemon, start_dockerd
from support.images import PushedImage, push_hello_image
from support.proxy import FaultProxy
from support.registry import (
    BASIC_USERS,
    Registry,
    start_basic_registry,
    start_registry,
    start_token_registry,
)


def _serve(registry: Registry) -> Iterator[Registry]:
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain registry without auth, shared by the session."""
    yield from _serve(start_registry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="session")
def schema1_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry accepting schema1 manifests (compatibility.schema1.enabled), session-wide."""
    extra = {"compatibility": {"schema1": {"enabled": True}}}
    yield from _serve(start_registry(tmp_path_factory.mktemp("schema1"), extra=extra))


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry with htpasswd (Basic) auth; `.users` is {"alice": "secret"}."""
    yield from _serve(start_basic_registry(tmp_path))


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry in token auth mode with `.token_server` (its `.requests` are recorded).

    Anonymous clients may pull outside private/; `.users` ({"alice": "secret"}) may pull and
    push everywhere.
    """
    yield from _serve(start_token_registry(tmp_path, dict(BASIC_USERS)))


@pytest.fixture(scope="session")
def hello_image(registry: Registry) -> PushedImage:
    """hello:1 in `registry`: busybox, Docker schema2, Cmd echoing images.HELLO_MESSAGE."""
    return push_hello_image(registry.url)


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A fault-injecting proxy (support.proxy) in front of `registry`."""
    server = FaultProxy(registry.url).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerDaemon]:
    """A private dockerd (vfs, no networking), stopped and deleted after the session."""
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()
