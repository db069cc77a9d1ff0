"""Prove the service fixtures and the image factory work against the real tools."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import requests
from support.client import registry_session
from support.dockerd import DockerDaemon
from support.images import (
    DOCKER_MANIFEST,
    HELLO_MESSAGE,
    SCHEMA1_SIGNED,
    PushedImage,
    make_layer,
    push_hello_image,
    push_image,
    push_index,
    push_schema1,
)
from support.process import skopeo
from support.registry import Registry
from support.tokenserver import SERVICE


def test_plain_registry_push_and_pull_by_digest(registry: Registry) -> None:
    layer = make_layer(
        {
            "etc": ("dir",),
            "etc/motd": b"hi\n",
            "etc/ln": ("symlink", "motd"),
            "etc/hl": ("hardlink", "etc/motd"),
        }
    )
    image = push_image(registry.url, "plain/app", "v1", [layer])

    manifest_uri = f"/v2/plain/app/manifests/{image.manifest_digest}"
    got = requests.get(registry.url + manifest_uri, headers={"Accept": DOCKER_MANIFEST})
    assert got.status_code == 200
    assert got.content == image.manifest_bytes
    assert got.headers["Docker-Content-Digest"] == image.manifest_digest
    blob = requests.get(f"{registry.url}/v2/plain/app/blobs/{layer.digest}")
    assert blob.content == layer.blob
    assert f"GET {manifest_uri}" in registry.request_log()
    assert make_layer({"etc/motd": b"hi\n"}) == make_layer({"/etc/motd": b"hi\n"})


def test_token_registry_challenges_and_issues_tokens(token_registry: Registry) -> None:
    alice = registry_session(("alice", token_registry.users["alice"]))
    image = push_image(
        token_registry.url, "pub/app", "v1", [make_layer({"a": b"a"})], session=alice
    )
    url = f"{token_registry.url}/v2/pub/app/manifests/v1"

    anonymous = requests.get(url, headers={"Accept": DOCKER_MANIFEST})
    assert anonymous.status_code == 401
    challenge = anonymous.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert f'service="{SERVICE}"' in challenge
    assert 'scope="repository:pub/app:pull"' in challenge

    server = token_registry.token_server
    assert server is not None
    reply = requests.get(
        server.realm, params={"service": SERVICE, "scope": "repository:pub/app:pull"}
    )
    token = reply.json()["token"]
    assert reply.json()["access_token"] == token
    got = requests.get(url, headers={"Accept": DOCKER_MANIFEST, "Authorization": f"Bearer {token}"})
    assert got.status_code == 200
    assert got.headers["Docker-Content-Digest"] == image.manifest_digest
    assert server.requests[-1].authorization is False
    assert any(r.authorization for r in server.requests)


def test_token_registry_private_repos_need_login(token_registry: Registry) -> None:
    alice = registry_session(("alice", "secret"))
    push_image(token_registry.url, "private/x", "v1", [make_layer({"a": b"a"})], session=alice)
    url = f"{token_registry.url}/v2/private/x/manifests/v1"
    headers = {"Accept": DOCKER_MANIFEST}

    assert registry_session().get(url, headers=headers).status_code == 401
    assert registry_session(("alice", "wrong")).get(url, headers=headers).status_code == 401
    assert alice.get(url, headers=headers).status_code == 200
    # A real client: skopeo does the token dance itself.
    host = token_registry.host
    inspect = ["inspect", "--raw", "--tls-verify=false", f"docker://{host}/private/x:v1"]
    assert skopeo(*inspect, check=False).returncode != 0
    assert json.loads(skopeo(*inspect, "--creds", "alice:secret").stdout)


def test_basic_registry_requires_credentials(basic_registry: Registry) -> None:
    assert requests.get(f"{basic_registry.url}/v2/").status_code == 401
    alice = registry_session(("alice", basic_registry.users["alice"]))
    image = push_image(basic_registry.url, "app", "v1", [make_layer({"a": b"a"})], session=alice)
    url = f"{basic_registry.url}/v2/app/manifests/v1"
    assert requests.get(url).headers["WWW-Authenticate"].startswith("Basic ")
    assert registry_session(("alice", "wrong")).get(url).status_code == 401
    assert alice.get(url, headers={"Accept": DOCKER_MANIFEST}).content == image.manifest_bytes


def test_skopeo_inspects_image_and_oci_index(registry: Registry, hello_image: PushedImage) -> None:
    hello = skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/hello:1")
    assert json.loads(hello.stdout)["Digest"] == hello_image.manifest_digest

    amd64 = push_hello_image(registry.url, "multi", None, fmt="oci")
    arm64 = push_image(
        registry.url,
        "multi",
        None,
        [make_layer({"arch": b"arm64\n"})],
        fmt="oci",
        platform=("linux", "arm64", "v8"),
    )
    index = push_index(registry.url, "multi", "latest", [amd64, arm64])
    assert [m["platform"] for m in index.manifest["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    ref = f"docker://{registry.host}/multi:latest"
    raw = skopeo("inspect", "--raw", "--tls-verify=false", ref).stdout
    assert raw.encode() == index.manifest_bytes
    picked = skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", ref).stdout
    assert json.loads(picked)["Architecture"] == "arm64"


def test_schema1_push(
    registry: Registry, schema1_registry: Registry, hello_image: PushedImage
) -> None:
    digest = push_schema1(registry, schema1_registry, "hello", "1")
    got = requests.get(
        f"{schema1_registry.url}/v2/hello/manifests/{digest}", headers={"Accept": SCHEMA1_SIGNED}
    )
    assert got.status_code == 200
    manifest = got.json()
    assert manifest["schemaVersion"] == 1
    assert manifest["signatures"]
    assert [layer["blobSum"] for layer in manifest["fsLayers"]] == hello_image.layer_digests


def test_dockerd_loads_and_runs_hello(
    dockerd: DockerDaemon, registry: Registry, hello_image: PushedImage, tmp_path: Path
) -> None:
    archive = tmp_path / "hello.tar"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/hello:1",
        f"docker-archive:{archive}:hello:1",
    )
    dockerd.clean()
    assert "hello:1" in dockerd.load_tar(archive)
    assert dockerd.run("hello:1") == HELLO_MESSAGE + "\n"

    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    dockerd.clean()
    assert dockerd.docker("images", "-aq").stdout == ""
    assert "hello:1" in dockerd.load_dir(unpacked)
    assert dockerd.run("hello:1", "/bin/cat", "/proc/1/comm").strip() == "cat"
