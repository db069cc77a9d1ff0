"""The registry the benchmark talks to, and the deterministic images it pushes there.

Kept apart from tests/support on purpose (that package needs the test extras and may change
under the tests); only the few pieces the benchmark needs are here: start docker-registry on
127.0.0.1, build reproducible layers, push blobs and manifests through the HTTP API.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import socket
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests

REGISTRY_BIN = "/usr/bin/docker-registry"
MiB = 1 << 20

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EPOCH = "1970-01-01T00:00:00Z"

# Apache combined format, one line per request: "METHOD URI PROTO" STATUS BYTES
_ACCESS = re.compile(r'^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-)')
_PROBE = "/v2/?frozen-bench-probe"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    status: int
    size: int

    @property
    def is_blob_get(self) -> bool:
        return self.method == "GET" and "/blobs/sha256:" in self.uri and self.status in (200, 206)


@dataclass
class Registry:
    process: subprocess.Popen[bytes]
    host: str
    root: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log_offset(self) -> int:
        return self.log_path.stat().st_size

    def requests_since(self, offset: int, settle: float = 0.5) -> list[Request]:
        """Requests logged after byte `offset`. The access log line is written after the
        response, so wait (outside any timed window) until the log stops growing."""
        deadline = time.monotonic() + settle
        size = self.log_offset()
        while time.monotonic() < deadline:
            time.sleep(0.03)
            now = self.log_offset()
            if now == size:
                break
            size = now
        with self.log_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        out = []
        for line in text.splitlines():
            m = _ACCESS.match(line)
            if m and m[2] != _PROBE:
                out.append(Request(m[1], m[2], int(m[3]), 0 if m[4] == "-" else int(m[4])))
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_registry(workdir: Path) -> Registry:
    """docker-registry on 127.0.0.1:<free port>, filesystem storage under workdir, access log
    on (one line per request, with the bytes sent), application log at warn level."""
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "frozen-tasks-benchmarks"},
    }
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config_path)], stdout=log,
                                stderr=subprocess.STDOUT)
    registry = Registry(proc, f"127.0.0.1:{port}", workdir / "storage", log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(registry.url + _PROBE, timeout=1).status_code == 200:
                return registry
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    registry.stop()
    raise RuntimeError(f"docker-registry did not come up; log:\n{log_path.read_text()}")


# -- layers and images ---------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    data: bytes
    digest: str
    size: int


@dataclass(frozen=True)
class Layer(Blob):
    diff_id: str


@dataclass
class Image:
    repo: str
    tag: str
    layers: list[Layer]
    config: Blob
    manifest: bytes
    digest: str

    @property
    def blobs(self) -> list[Blob]:
        return [self.config, *self.layers]

    def ref(self, host: str, *, pinned: bool = True) -> str:
        base = f"{host}/{self.repo}:{self.tag}"
        return f"{base}@{self.digest}" if pinned else base


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A reproducible tar (sorted, mtime 0, root-owned) of {path: (data, mode)}; dirs implied."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({p.rsplit("/", 1)[0] for p in files if "/" in p})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for path in sorted(files):
            data, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_layer(files: dict[str, tuple[bytes, int]], level: int = 1) -> Layer:
    raw = _tar(files)
    blob = gzip.compress(raw, compresslevel=level, mtime=0)  # zlib releases the GIL
    return Layer(blob, sha256_digest(blob), len(blob), sha256_digest(raw))


def busybox_layer() -> Layer:
    return gzip_layer({"bin/busybox": (Path("/bin/busybox").read_bytes(), 0o755)}, level=6)


def random_layer(seed: int, size: int) -> Layer:
    """`size` incompressible bytes from a seeded PRNG, in one file, gzip level 1."""
    rng = random.Random(seed)
    step = 16 * MiB  # randbytes(n) is limited to n * 8 < 2**31 bits
    data = b"".join(rng.randbytes(min(step, size - i)) for i in range(0, size, step))
    return gzip_layer({f"data/blob-{seed}": (data, 0o644)}, level=1)


def make_image(repo: str, tag: str, layers: list[Layer], label: str) -> Image:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/busybox", "true"],
                   "Labels": {"frozen-bench": label}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": EPOCH, "created_by": f"layer {i}"} for i in range(len(layers))],
    }
    config_bytes = json.dumps(config, indent=2).encode()
    cfg = Blob(config_bytes, sha256_digest(config_bytes), len(config_bytes))
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": cfg.size, "digest": cfg.digest},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": x.size, "digest": x.digest}
                   for x in layers],
    }, indent=3).encode()
    return Image(repo, tag, list(layers), cfg, manifest, sha256_digest(manifest))


@dataclass
class Workload:
    name: str
    title: str
    images: list[Image]
    extra: dict[str, Image] = field(default_factory=dict)  # pushed, not listed (by digest)

    def unique_blobs(self) -> list[tuple[str, Blob]]:
        """(repo, blob) for every distinct blob the listed images need."""
        seen: dict[str, tuple[str, Blob]] = {}
        for image in self.images:
            for blob in image.blobs:
                seen.setdefault(blob.digest, (image.repo, blob))
        return list(seen.values())

    @property
    def unique_bytes(self) -> int:
        return sum(blob.size for _, blob in self.unique_blobs())


def build_workloads(big_size: int, log=print) -> dict[str, Workload]:
    """W1 app, W2 many, W3 big (see README). Layers are made on two threads."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(random_layer, 3000, big_size)  # the slow one starts first
        data = {n: pool.submit(random_layer, 1000 + n, 16 * MiB) for n in range(1, 9)}
        small = [pool.submit(gzip_layer, {"etc/small": (random.Random(2000 + i).randbytes(1024),
                                                         0o644)}) for i in range(20)]
        bb = pool.submit(busybox_layer)
        base = [bb.result()] + [data[n].result() for n in range(1, 5)]
        w1 = Workload("W1", "app: 3 images x 6 layers (5 shared), 16 MiB layers", [
            make_image("w1/app", "v1", base + [data[5].result()], "app-v1"),
            make_image("w1/app", "v2", base + [data[6].result()], "app-v2"),
            make_image("w1/app", "v3", base + [data[7].result()], "app-v3"),
        ])
        # The incremental case: the tag v2 moved to an image with a new top layer.
        w1.extra["v2-moved"] = make_image("w1/app", "v2", base + [data[8].result()],
                                          "app-v2-moved")
        w2 = Workload("W2", "many: 20 images x 1 small layer (~1 KiB)", [
            make_image(f"w2/small{i:02d}", "latest", [f.result()], f"small-{i}")
            for i, f in enumerate(small)
        ])
        w3 = Workload("W3", f"big: 1 image, one {big_size // MiB} MiB layer",
                      [make_image("w3/big", "latest", [big.result()], "big")])
    log(f"  layers built in {time.monotonic() - t0:.1f} s")
    return {"W1": w1, "W2": w2, "W3": w3}


# -- pushing -------------------------------------------------------------------------------


def _check(response: requests.Response) -> requests.Response:
    if not response.ok:
        raise RuntimeError(f"{response.request.method} {response.url}: "
                           f"{response.status_code} {response.text[:300]}")
    return response


def push_blob(session: requests.Session, url: str, repo: str, blob: Blob) -> None:
    """POST + monolithic PUT, skipped when the repository already has the blob (as docker)."""
    if session.head(f"{url}/v2/{repo}/blobs/{blob.digest}", timeout=30).status_code == 200:
        return
    start = _check(session.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=30))
    location = urljoin(url, start.headers["Location"])
    _check(session.put(location, params={"digest": blob.digest}, data=blob.data,
                       headers={"Content-Type": "application/octet-stream"}, timeout=600))


def put_manifest(session: requests.Session, url: str, image: Image, reference: str) -> None:
    response = _check(session.put(f"{url}/v2/{image.repo}/manifests/{reference}",
                                  data=image.manifest,
                                  headers={"Content-Type": DOCKER_MANIFEST}, timeout=30))
    assert response.headers["Docker-Content-Digest"] == image.digest


def push_image(session: requests.Session, url: str, image: Image, *, tag: bool = True) -> None:
    for blob in image.blobs:
        push_blob(session, url, image.repo, blob)
    put_manifest(session, url, image, image.tag if tag else image.digest)


def push_workloads(url: str, workloads: dict[str, Workload]) -> None:
    session = requests.Session()
    for workload in workloads.values():
        for image in workload.images:
            push_image(session, url, image)
        for image in workload.extra.values():
            push_image(session, url, image, tag=False)  # by digest: the tag moves later


def drop_payloads(workloads: dict[str, Workload]) -> None:
    """Free the blob bytes once pushed (sizes and digests stay)."""
    for workload in workloads.values():
        for image in [*workload.images, *workload.extra.values()]:
            image.layers = [Layer(b"", x.digest, x.size, x.diff_id) for x in image.layers]
            image.config = Blob(image.config.data, image.config.digest, image.config.size)
