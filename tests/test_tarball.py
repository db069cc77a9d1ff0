"""write_tarball: one reproducible tar of the output directory, loaded by every consumer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.dockerd import DockerDaemon
from support.frozen import Project
from support.images import HELLO_MESSAGE, busybox_layer, make_layer, push_hello_image, push_image
from support.process import run, skopeo
from support.registry import Registry

from frozen_tasks.output.tarball import write_tarball

OTHER_MESSAGE = "hello from the other image"


@dataclass
class Frozen:
    parallel: Project  # frozen with doit's default (4 threads)
    serial: Project  # a fresh cache, frozen with `doit -n 1`
    messages: dict[str, str]  # name in the output → what `docker run` prints
    qualified: dict[str, str]  # name in the output → fully qualified name (skopeo)


@pytest.fixture(scope="module")
def frozen(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Frozen:
    """Two images sharing the busybox layer, one of them under two tags, frozen twice."""
    host = registry.host
    hello = push_hello_image(registry.url, "tarball/hello", "1")
    extra = make_layer({"other.txt": b"only in the other image"})
    push_image(registry.url, "tarball/other", "1", [busybox_layer(), extra],
               config_overrides={"Cmd": ["/bin/echo", OTHER_MESSAGE]})
    images = [
        {"ref": f"{host}/tarball/hello:1@{hello.manifest_digest}",
         "tags": ["tarball/hello:1", "tarball/hello:also"]},
        f"{host}/tarball/other:1",
    ]
    projects = []
    for name, args in (("parallel", ()), ("serial", ("-n", "1"))):
        project = Project(tmp_path_factory.mktemp(f"tarball-{name}"))
        project.write_images(images, output="out", platform="linux/amd64")
        project.doit(*args, "frozen")
        projects.append(project)
    messages = {
        "tarball/hello:1": HELLO_MESSAGE,
        "tarball/hello:also": HELLO_MESSAGE,
        f"{host}/tarball/other:1": OTHER_MESSAGE,
    }
    qualified = {
        "tarball/hello:1": "docker.io/tarball/hello:1",
        "tarball/hello:also": "docker.io/tarball/hello:also",
        f"{host}/tarball/other:1": f"{host}/tarball/other:1",
    }
    return Frozen(projects[0], projects[1], messages, qualified)


@pytest.fixture(scope="module")
def tarball(frozen: Frozen, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The parallel project's output, packed with the default mtime."""
    path = tmp_path_factory.mktemp("tarball") / "images.tar"
    write_tarball(frozen.parallel.output, path, mtime=0)
    return path


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_same_bytes_across_runs_caches_and_parallelism(
    frozen: Frozen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first, second, serial = tmp_path / "1.tar", tmp_path / "2.tar", tmp_path / "serial.tar"
    digest = write_tarball(frozen.parallel.output, first)
    assert digest == _sha256(first), "the digest returned is the tar's"
    assert write_tarball(frozen.parallel.output, second) == digest
    assert first.read_bytes() == second.read_bytes()
    # Another cache (other inodes), filled by a serial run: the same tar.
    a = (frozen.parallel.output / "manifest.json").stat().st_ino
    assert a != (frozen.serial.output / "manifest.json").stat().st_ino
    assert write_tarball(frozen.serial.output, serial) == digest
    assert serial.read_bytes() == first.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temp left"


def test_members_are_normalised_and_sorted(frozen: Frozen, tarball: Path) -> None:
    members = _members(tarball)
    names = [m.name for m in members]
    assert names[0] == "."
    assert all(n == "." or n.startswith("./") for n in names)
    parts = [tuple(n.split("/")) for n in names]
    assert parts == sorted(parts), "sorted by path, each directory before its contents"
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", ""), m.name
        assert m.pax_headers == {}, m.name
        assert m.mode == (0o755 if m.isdir() else 0o644), m.name
    out = frozen.parallel.output
    on_disk = {"."} | {
        "./" + str(p.relative_to(out)) for p in out.rglob("*")
        if not any(part.startswith(".") for part in p.relative_to(out).parts)
    }
    assert set(names) == on_disk
    # No hard-link members (skopeo and podman would read them as empty): every name in full.
    assert all(m.isdir() or m.isfile() for m in members)
    for m in members:
        if m.isfile():
            assert m.size == (out / m.name).stat().st_size, m.name
    manifest = json.loads((out / "manifest.json").read_text())
    busybox = "./blobs/sha256/" + busybox_layer().digest[7:]
    assert all("./" + entry["Layers"][0] == busybox for entry in manifest)
    stored = [m.name for m in members if m.isfile() and m.size == busybox_layer().size]
    assert busybox in stored and any(n.endswith("/layer.tar") for n in stored)


def test_mtime_from_argument_and_source_date_epoch(
    frozen: Frozen, tarball: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = frozen.parallel.output
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    from_env = tmp_path / "env.tar"
    write_tarball(out, from_env)
    assert {m.mtime for m in _members(from_env)} == {1700000000}
    assert from_env.read_bytes() != tarball.read_bytes()
    from_arg = tmp_path / "arg.tar"
    write_tarball(out, from_arg, mtime=1234567890)  # the argument wins over the environment
    assert {m.mtime for m in _members(from_arg)} == {1234567890}
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    again = tmp_path / "again.tar"
    write_tarball(out, again, mtime=1700000000)
    assert again.read_bytes() == from_env.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        write_tarball(out, tmp_path / "bad.tar")


def test_dotfiles_left_out_and_tar_replaced(
    frozen: Frozen, tarball: Path, tmp_path: Path
) -> None:
    out = frozen.parallel.output
    target = tmp_path / "images.tar"
    target.write_bytes(b"old")
    junk = [out / ".images.tar.1.tmp", out / "blobs" / ".partial"]
    for path in junk:
        path.write_bytes(b"in progress")
    try:
        write_tarball(out, target, mtime=0)
    finally:
        for path in junk:
            path.unlink()
    assert target.read_bytes() == tarball.read_bytes()
    with pytest.raises(ValueError, match="pack itself"):
        write_tarball(out, out / "images.tar")
    assert not (out / "images.tar").exists()


def test_inodes_do_not_matter(tmp_path: Path) -> None:
    """Names of one inode (linked from a cache) or separate copies: the same tar."""
    linked, copied = tmp_path / "linked", tmp_path / "copied"
    for root in (linked, copied):
        (root / "b").mkdir(parents=True)
        (root / "a").mkdir()
        (root / "a-b").write_bytes(b"sorted after a/, before b/")
    (linked / "b" / "x").write_bytes(b"shared")
    os.link(linked / "b" / "x", linked / "a" / "y")
    (copied / "a" / "y").write_bytes(b"shared")
    (copied / "b" / "x").write_bytes(b"shared")
    os.chmod(copied / "a" / "y", 0o600)
    os.chmod(copied / "b", 0o700)
    digest = write_tarball(linked, tmp_path / "linked.tar")
    assert write_tarball(copied, tmp_path / "copied.tar") == digest
    members = _members(tmp_path / "linked.tar")
    assert [m.name for m in members] == [".", "./a", "./a/y", "./a-b", "./b", "./b/x"]
    assert all(m.isdir() or (m.isfile() and m.size > 0) for m in members)


def test_streams_without_holding_files_in_memory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with open(out / "big", "wb") as f:
        f.truncate(64 << 20)
    tracemalloc.start()
    try:
        write_tarball(out, tmp_path / "big.tar")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    from frozen_tasks.store import CHUNK

    assert peak < 3 * CHUNK < 64 << 20, peak  # a few copy buffers, not the 64 MiB file
    assert (tmp_path / "big.tar").stat().st_size > 64 << 20


def test_docker_load_and_run(frozen: Frozen, tarball: Path, dockerd: DockerDaemon) -> None:
    dockerd.clean()  # a daemon holding the layers already would not read them
    loaded = dockerd.load_tar(tarball)
    for name, message in frozen.messages.items():
        assert f"Loaded image: {name}\n" in loaded
        assert dockerd.run(name) == message + "\n", name


def test_skopeo_reads_the_docker_archive(frozen: Frozen, tarball: Path, tmp_path: Path) -> None:
    for name, qualified in frozen.qualified.items():
        info = json.loads(skopeo("inspect", f"docker-archive:{tarball}:{qualified}").stdout)
        assert info["Architecture"] == "amd64", name
        assert info["Layers"][0] == busybox_layer().diff_id  # docker-archive: diff_ids
        # A copy reads (and verifies) every layer, hard-linked members included.
        dest = tmp_path / name.replace("/", "_").replace(":", "_")
        skopeo("copy", f"docker-archive:{tarball}:{qualified}", f"oci:{dest}:x")
        index = json.loads((dest / "index.json").read_text())
        assert len(index["manifests"]) == 1


@pytest.fixture
def podman() -> Iterator[list[str]]:
    """podman (installed by tests/run.sh) with its own storage (vfs) in a short /tmp dir."""
    binary = shutil.which("podman")
    assert binary, "podman is missing: tests/run.sh installs it"
    base = Path(tempfile.mkdtemp(prefix="fz-podman-", dir="/tmp"))  # runroot: <= 50 chars
    try:
        yield [binary, "--root", str(base / "root"), "--runroot", str(base / "run"),
               "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
               "--events-backend", "file"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_podman_load(frozen: Frozen, tarball: Path, podman: list[str]) -> None:
    """podman load reads every layer (verified); `podman run` cannot start here (rlimits)."""
    loaded = run([*podman, "load", "-i", tarball])
    for name in frozen.messages:
        # podman names a docker-archive tag without a registry localhost/..., not docker.io/...
        podman_name = name if frozen.qualified[name] == name else f"localhost/{name}"
        assert f"Loaded image: {podman_name}\n" in loaded.stdout, loaded.stdout
        inspect = json.loads(run([*podman, "image", "inspect", podman_name]).stdout)[0]
        assert inspect["RootFS"]["Layers"][0] == busybox_layer().diff_id
