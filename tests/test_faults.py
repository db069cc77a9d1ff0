"""Network faults between us and a real registry: resumed, retried, or reported clearly,
and never a wrong blob in the cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.frozen import Project
from support.images import PushedImage, make_layer, push_image
from support.proxy import Answer, FaultProxy
from support.registry import Registry

FAST = {"FROZEN_BACKOFF": "0.01", "FROZEN_STALL_TIMEOUT": "1", "FROZEN_ATTEMPTS": "4"}


@pytest.fixture(scope="module")
def image(registry: Registry) -> PushedImage:
    """An image with one 2 MiB layer of incompressible bytes."""
    import random

    data = random.Random(7).randbytes(2 << 20)
    return push_image(registry.url, "faults/big", "v1", [make_layer({"data.bin": data})])


def _project(tmp_path: Path, proxy: FaultProxy, image: PushedImage, **env: str) -> Project:
    project = Project(tmp_path)
    project.extra_env = {**FAST, **env}
    project.write_images([f"{proxy.host}/faults/big:v1@{image.manifest_digest}"])
    return project


def _layer(image: PushedImage) -> str:
    return image.layer_digests[0]


def _once(predicate, change):
    """A fault applied to the first answer matching `predicate` only."""
    state = {"done": False}

    def fault(answer: Answer) -> None:
        if not state["done"] and predicate(answer):
            state["done"] = True
            change(answer)

    return fault


def _is_layer(image: PushedImage):
    return lambda a: a.method == "GET" and a.path.endswith(_layer(image))


def _cached_ok(project: Project, image: PushedImage) -> None:
    from frozen_tasks.store import sha256_file

    blob = project.cache / "blobs" / "sha256" / _layer(image)[7:]
    assert sha256_file(blob)[0] == _layer(image)
    assert (project.output / "manifest.json").is_file()


def test_dropped_connection_is_resumed_with_range(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    proxy.fault = _once(_is_layer(image), lambda a: setattr(a, "cut_after", 700_000))
    project = _project(tmp_path, proxy, image)
    project.doit("frozen")
    _cached_ok(project, image)
    ranges = [s.range for s in proxy.requests_for(_layer(image))]
    assert ranges == [None, "bytes=700000-"]


def test_interrupted_run_is_resumed_by_the_next_run(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    proxy.fault = _once(_is_layer(image), lambda a: setattr(a, "cut_after", 1_000_000))
    project = _project(tmp_path, proxy, image, FROZEN_ATTEMPTS="1")
    failed = project.doit("frozen", check=False)
    assert failed.returncode != 0 and "run again to resume" in failed.stdout + failed.stderr
    partial = project.cache / "blobs" / "sha256" / f".{_layer(image)[7:]}.partial"
    assert partial.stat().st_size == 1_000_000
    assert not (project.cache / "blobs" / "sha256" / _layer(image)[7:]).exists()
    project.doit("frozen")
    _cached_ok(project, image)
    assert proxy.requests_for(_layer(image))[-1].range == "bytes=1000000-"
    assert not partial.exists()


def test_server_ignoring_range_is_handled(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    proxy.fault = _once(_is_layer(image), lambda a: setattr(a, "cut_after", 500_000))
    proxy.request_fault = lambda path, headers: headers.pop("Range", None)
    project = _project(tmp_path, proxy, image)
    project.doit("frozen")
    _cached_ok(project, image)
    assert len(proxy.requests_for(_layer(image))) == 2


def test_416_body_is_never_read(proxy: FaultProxy, image: PushedImage, tmp_path: Path) -> None:
    def fault(answer: Answer) -> None:
        if _is_layer(image)(answer):
            if answer.request_headers.get("Range"):
                # As distribution does: a Content-Length that the body never fills.
                answer.status, answer.body, answer.content_length = 416, b"", 1_000_000
            elif len(proxy.requests_for(_layer(image))) == 1:
                answer.cut_after = 300_000

    proxy.fault = fault
    project = _project(tmp_path, proxy, image, FROZEN_STALL_TIMEOUT="30")
    started = time.monotonic()
    project.doit("frozen")
    assert time.monotonic() - started < 20, "a 416 body read would stall until the timeout"
    _cached_ok(project, image)
    assert [s.range for s in proxy.requests_for(_layer(image))] == [None, "bytes=300000-", None]


def test_5xx_is_retried(proxy: FaultProxy, image: PushedImage, tmp_path: Path) -> None:
    count = {"n": 0}

    def fault(answer: Answer) -> None:
        if _is_layer(image)(answer) and count["n"] < 2:
            count["n"] += 1
            answer.status, answer.body = (500, 503)[count["n"] - 1], b"try later"

    proxy.fault = fault
    project = _project(tmp_path, proxy, image)
    project.doit("frozen")
    _cached_ok(project, image)


def test_persistent_5xx_is_reported_clearly(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    def fault(answer: Answer) -> None:
        if _is_layer(image)(answer):
            answer.status, answer.body = 503, b"down for maintenance"

    proxy.fault = fault
    project = _project(tmp_path, proxy, image)
    result = project.doit("frozen", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in text
    assert f"{proxy.host}/faults/big" in text and _layer(image) in text
    assert f"registry {proxy.host} answered HTTP 503" in text
    assert len(proxy.requests_for(_layer(image))) == 4, "FROZEN_ATTEMPTS bounds the tries"
    assert not (project.cache / "blobs" / "sha256" / _layer(image)[7:]).exists()


def test_429_retry_after_is_honoured(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    proxy.fault = _once(_is_layer(image), lambda a: (
        setattr(a, "status", 429), setattr(a, "body", b""), a.headers.update({"Retry-After": "1"})))
    project = _project(tmp_path, proxy, image)
    started = time.monotonic()
    project.doit("frozen")
    assert time.monotonic() - started >= 1
    _cached_ok(project, image)


def test_429_with_a_long_wait_says_which_limit(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    def fault(answer: Answer) -> None:
        if "/manifests/" in answer.path:
            answer.status, answer.body = 429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}'
            answer.headers.update({"Retry-After": "3600", "RateLimit-Limit": "100;w=21600",
                                   "RateLimit-Remaining": "0;w=21600"})

    proxy.fault = fault
    project = _project(tmp_path, proxy, image)
    started = time.monotonic()
    result = project.doit("frozen", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and time.monotonic() - started < 20, "fails at once"
    assert "rate limiting" in text and "limit 100 pulls per 21600 s, 0 left" in text
    assert "wait 3600 s" in text and f"docker login {proxy.host}" in text


def test_stalled_body_is_retried(proxy: FaultProxy, image: PushedImage, tmp_path: Path) -> None:
    proxy.fault = _once(_is_layer(image), lambda a: setattr(a, "stall", 4))
    project = _project(tmp_path, proxy, image)
    project.doit("frozen")
    _cached_ok(project, image)
    # Retried once; what a timed-out read had buffered (under one 4 MiB chunk) is fetched again.
    assert len(proxy.requests_for(_layer(image))) == 2


def test_longer_body_is_cut_off_and_never_stored(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    def fault(answer: Answer) -> None:
        if _is_layer(image)(answer):
            answer.body += b"trailing garbage"

    proxy.fault = fault
    project = _project(tmp_path, proxy, image)
    result = project.doit("frozen", check=False)
    assert result.returncode != 0
    assert "more than the" in result.stdout + result.stderr
    blobs = project.cache / "blobs" / "sha256"
    assert not (blobs / _layer(image)[7:]).exists()
    assert not list(blobs.glob(".*.partial")), "nothing half-written is kept"


def test_head_resolves_tags_and_a_cached_manifest_is_not_fetched(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    project = _project(tmp_path, proxy, image)
    project.write_images([f"{proxy.host}/faults/big:v1"])
    project.doit("frozen")
    (project.root / "images.lock.json").unlink()  # forget the lock: the tag is resolved again
    before = len(proxy.seen)
    project.doit("frozen")
    new = [(s.method, s.path) for s in proxy.seen[before:]]
    assert new == [("HEAD", "/v2/faults/big/manifests/v1")]


def test_untrusted_manifests_are_refused_before_touching_the_filesystem(
    proxy: FaultProxy, image: PushedImage, tmp_path: Path
) -> None:
    import json

    from support.images import push_index

    inner = push_index(proxy.upstream, "faults/big", None, [image], fmt="oci")
    cases = {
        "path traversal": (lambda m: json.dumps({**m, "layers": [
            {**m["layers"][0], "digest": "sha256:../../../../etc/passwd"}]}).encode(),
            "malformed digest"),
        "oversized": (lambda m: json.dumps({**m, "pad": "x" * (5 << 20)}).encode(),
                      "manifest larger than 4194304 bytes"),
        "nested index": (lambda m: json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": inner.manifest_digest, "size": len(inner.manifest_bytes),
                           "platform": {"os": "linux", "architecture": "amd64"}}]}).encode(),
            "nested indexes are not supported"),
    }
    for name, (change, expected) in cases.items():

        def fault(answer: Answer, change=change) -> None:
            if answer.method != "GET" or "/manifests/" not in answer.path:
                return
            if answer.path.endswith("/v1"):  # the tag: rewritten, unverifiable
                answer.body = change(json.loads(answer.body))
                answer.headers = {k: v for k, v in answer.headers.items()
                                  if k.lower() not in ("docker-content-digest", "content-type")}
                answer.headers["Content-Type"] = json.loads(answer.body).get(
                    "mediaType", "application/vnd.oci.image.manifest.v1+json")

        proxy.fault = fault
        project = _project(tmp_path / name.replace(" ", "-"), proxy, image)
        project.write_images([f"{proxy.host}/faults/big:v1"])
        result = project.doit("frozen", check=False)
        text = result.stdout + result.stderr
        assert result.returncode != 0, name
        assert expected in text and "Traceback" not in text, (name, text)
        assert not [p for p in project.root.rglob("*") if "passwd" in p.name]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    import email.utils

    from frozen_tasks.registry.client import _retry_after

    assert _retry_after({"Retry-After": "7"}) == 7
    assert _retry_after({}) is None and _retry_after({"Retry-After": "soon"}) is None
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= _retry_after({"Retry-After": in_a_minute}) <= 61
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert _retry_after({"Retry-After": past}) == 0
