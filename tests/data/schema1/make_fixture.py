"""Regenerate the signed schema1 fixtures in this directory (local tools only, no network).

Starts two Debian ``docker-registry`` processes on 127.0.0.1, pushes a tiny schema2 image
(two gzip layers; an ENV step and a CMD step recorded as empty layers) to the first, then
makes two signed schema1 manifests of it on the second (``compatibility: schema1: enabled``):

- ``skopeo``: ``skopeo copy --format v2s1`` converts and signs it (compact JSON);
- ``registry``: ``skopeo copy`` keeps schema2 and the registry converts it on GET
  (pretty JSON, signed with the registry's own key).

For each NAME it saves ``NAME.manifest.json`` (the raw bytes served for
``Accept: application/vnd.docker.distribution.manifest.v1+prettyjws``) and ``NAME.digest``
(the ``Docker-Content-Digest`` header, "sha256:<64 hex>"), plus ``diff_ids.json`` (the
uncompressed layer digests, bottom to top).

Run: ``python tests/data/schema1/make_fixture.py``.
"""

import gzip
import hashlib
import io
import json
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = "test/schema1"
SCHEMA2_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SIGNED_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(name: str, content: bytes) -> tuple[bytes, str]:
    """Return (gzip tar blob, diff_id) of a one-file layer, byte-for-byte reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = buf.getvalue()
    return gzip.compress(tar_bytes, mtime=0), _sha256(tar_bytes)


def _start_registry(tmp: Path, name: str, schema1: bool) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    config = tmp / f"{name}.yml"
    compat = "compatibility:\n  schema1:\n    enabled: true\n" if schema1 else ""
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp / name}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + compat
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if requests.get(f"{base}/v2/", timeout=1).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"registry {name} did not start")


def _push_blob(base: str, data: bytes) -> str:
    digest = _sha256(data)
    start = requests.post(f"{base}/v2/{REPO}/blobs/uploads/", timeout=10)
    start.raise_for_status()
    location = start.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    put = requests.put(f"{location}{sep}digest={digest}", data=data, timeout=10)
    put.raise_for_status()
    return digest


def _push_image(base: str) -> list[str]:
    layers = [_layer("hello.txt", b"hello\n"), _layer("world.txt", b"world\n")]
    diff_ids = [diff_id for _, diff_id in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2020-01-01T00:00:04Z",
        "author": "frozen-tasks tests",
        "config": {"Env": ["PATH=/bin", "GREETING=hi"], "Cmd": ["cat", "/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2020-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop) ADD hello.txt /"},
            {
                "created": "2020-01-01T00:00:02Z",
                "created_by": "/bin/sh -c #(nop)  ENV GREETING=hi",
                "empty_layer": True,
            },
            {
                "created": "2020-01-01T00:00:03Z",
                "created_by": "/bin/sh -c echo world > /world.txt",
                "comment": "second layer",
            },
            {
                "created": "2020-01-01T00:00:04Z",
                "created_by": '/bin/sh -c #(nop)  CMD ["cat" "/hello.txt"]',
                "empty_layer": True,
            },
        ],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": SCHEMA2_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config_bytes),
            "digest": _push_blob(base, config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(blob),
                "digest": _push_blob(base, blob),
            }
            for blob, _ in layers
        ],
    }
    put = requests.put(
        f"{base}/v2/{REPO}/manifests/latest",
        data=json.dumps(manifest, indent=3).encode(),
        headers={"Content-Type": SCHEMA2_MANIFEST},
        timeout=10,
    )
    put.raise_for_status()
    return diff_ids


def _skopeo_copy(source: str, dest: str, tag: str, *extra: str) -> None:
    src, dst = (
        f"docker://{url.removeprefix('http://')}/{REPO}:{name}"
        for url, name in ((source, "latest"), (dest, tag))
    )
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
         *extra, src, dst],
        check=True,
    )  # fmt: skip


def _save_schema1(base: str, tag: str, name: str) -> None:
    got = requests.get(
        f"{base}/v2/{REPO}/manifests/{tag}", headers={"Accept": SIGNED_SCHEMA1}, timeout=10
    )
    got.raise_for_status()
    if got.headers["Content-Type"] != SIGNED_SCHEMA1:
        raise RuntimeError(f"{name}: unexpected Content-Type {got.headers['Content-Type']}")
    (HERE / f"{name}.manifest.json").write_bytes(got.content)
    (HERE / f"{name}.digest").write_text(got.headers["Docker-Content-Digest"] + "\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source, source_url = _start_registry(tmp, "source", schema1=False)
        dest, dest_url = _start_registry(tmp, "dest", schema1=True)
        try:
            diff_ids = _push_image(source_url)
            _skopeo_copy(source_url, dest_url, "v2s1", "--format", "v2s1")
            _skopeo_copy(source_url, dest_url, "v2s2")
            _save_schema1(dest_url, "v2s1", "skopeo")
            _save_schema1(dest_url, "v2s2", "registry")
        finally:
            for proc in (source, dest):
                proc.terminate()
                proc.wait(timeout=10)
    (HERE / "diff_ids.json").write_text(json.dumps(diff_ids, indent=2) + "\n")


if __name__ == "__main__":
    main()
