"""`frozen-tasks inspect` and `frozen-tasks verify` on a real `doit frozen` output and its tar."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.frozen import Project
from support.images import PushedImage, busybox_layer, make_layer, push_hello_image, push_image
from support.registry import Registry

from frozen_tasks.inspect import verify_output

ARM = ("linux", "arm64", "v8")
REBUILD = ("rebuild it from the cache: `doit clean frozen && doit frozen` (or delete the "
           "directory and re-run frozen-download)")


@dataclass
class Frozen:
    project: Project
    out: Path
    tar: Path
    hello: PushedImage
    multi: PushedImage
    hello_tag: str


def _pack(directory: Path, tar: Path) -> Path:
    """`tar -cC directory . > tar` (GNU tar: a second name of an inode becomes a link member)."""
    with tar.open("wb") as f:
        subprocess.run(["tar", "-cC", str(directory), "."], stdout=f, check=True)
    return tar


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "frozen_tasks.main", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def frozen(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Frozen:
    """Two images frozen by `doit frozen`: hello (Docker schema2, 1 layer, default tag) and
    multi (OCI, linux/arm64/v8, 2 layers, two tags); plus `tar -cC out .` of the output."""
    hello = push_hello_image(registry.url, "inspect/hello", "1")
    extra = make_layer({"extra.txt": b"the second layer"})
    multi = push_image(registry.url, "inspect/multi", "v2", [busybox_layer(), extra], fmt="oci",
                       platform=ARM)
    project = Project(tmp_path_factory.mktemp("inspect-project"))
    project.write_images([
        f"{registry.host}/inspect/hello:1",
        {"ref": f"{registry.host}/inspect/multi:v2",
         "tags": ["inspect/multi:v2", "inspect/multi:also"]},
    ], output="out", platform="linux/amd64")
    project.doit("frozen")
    tar = _pack(project.output, project.root / "out.tar")
    return Frozen(project, project.output, tar, hello, multi, f"{registry.host}/inspect/hello:1")


@pytest.fixture
def broken(frozen: Frozen, tmp_path: Path) -> Path:
    """A real copy of the output (its blobs are hard links into the cache: never edit those)."""
    copy = tmp_path / "out"
    shutil.copytree(frozen.out, copy, copy_function=shutil.copy2)
    return copy


def _index_digest(out: Path, tag: str) -> str:
    index = json.loads((out / "index.json").read_text())
    [digest] = {m["digest"] for m in index["manifests"]
                if m["annotations"].get("org.opencontainers.image.ref.name") == tag}
    return digest


def _problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].endswith("problems:") or lines[0].endswith("problem:")
    return lines[1:]


def _blob(out: Path, digest: str) -> Path:
    return out / "blobs" / "sha256" / digest.removeprefix("sha256:")


@pytest.mark.parametrize("kind", ["dir", "tar"])
def test_inspect_json_lists_tags_platform_digests_and_sizes(frozen: Frozen, kind: str) -> None:
    path = frozen.out if kind == "dir" else frozen.tar
    result = _cli("inspect", "--json", path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    images = json.loads(result.stdout)["images"]
    assert len(images) == 2
    by_tag = {tag: image for image in images for tag in image["tags"]}
    hello, multi = by_tag[frozen.hello_tag], by_tag["inspect/multi:v2"]
    assert hello["tags"] == [frozen.hello_tag]
    assert hello["names"] == [f"{frozen.hello_tag}"]
    assert hello["platform"] == "linux/amd64"
    assert hello["config_digest"] == frozen.hello.config_digest
    # Docker manifests are rewritten with OCI media types: the OCI one from index.json
    assert hello["manifest_digest"] == _index_digest(frozen.out, frozen.hello_tag)
    hello_manifest = _blob(frozen.out, hello["manifest_digest"]).read_bytes()
    assert "sha256:" + hashlib.sha256(hello_manifest).hexdigest() == hello["manifest_digest"]
    assert hello["layers"] == 1
    assert hello["compressed_size"] == sum(layer.size for layer in frozen.hello.layers)

    assert multi["tags"] == ["inspect/multi:v2", "inspect/multi:also"]
    assert multi["platform"] == "linux/arm64/v8"
    assert multi["manifest_digest"] == frozen.multi.manifest_digest  # OCI: used as fetched
    assert multi["config_digest"] == frozen.multi.config_digest
    assert multi["layers"] == 2
    assert multi["compressed_size"] == sum(layer.size for layer in frozen.multi.layers)


def test_inspect_table_is_readable(frozen: Frozen) -> None:
    result = _cli("inspect", frozen.tar)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["TAGS", "PLATFORM", "MANIFEST", "CONFIG", "LAYERS", "SIZE"]
    assert len(rows) == 2
    multi = next(row for row in rows if "inspect/multi:v2, inspect/multi:also" in row)
    assert "linux/arm64/v8" in multi
    assert frozen.multi.manifest_digest[:19] in multi
    assert frozen.multi.manifest_digest not in multi  # truncated unless --no-trunc
    full = _cli("inspect", "--no-trunc", frozen.out)
    assert frozen.multi.config_digest in full.stdout


@pytest.mark.parametrize("kind", ["dir", "tar"])
def test_verify_passes_on_the_output_and_its_tar(frozen: Frozen, kind: str) -> None:
    path = frozen.out if kind == "dir" else frozen.tar
    result = _cli("verify", path)
    assert result.returncode == 0, result.stderr
    blobs = list((frozen.out / "blobs" / "sha256").iterdir())
    mib = sum(p.stat().st_size for p in blobs) / (1 << 20)
    assert result.stdout.startswith(f"verified 2 images, {len(blobs)} blobs, {mib:.1f} MiB")
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""


def test_verify_names_a_corrupted_blob(frozen: Frozen, broken: Path) -> None:
    layer = _blob(broken, frozen.multi.layers[1].digest)
    assert not os.path.samefile(layer, _blob(frozen.out, frozen.multi.layers[1].digest))
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    problems = _problems(_cli("verify", broken))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{layer}: content hashes to sha256:")
    assert "not its name (corrupted)" in problems[0] and "doit frozen" in problems[0]
    # the same problem, found in a tar of the copy
    [in_tar] = _problems(_cli("verify", _pack(broken, broken.parent / "broken.tar")))
    assert f"broken.tar:blobs/sha256/{layer.name}: content hashes to" in in_tar
    assert "rebuild the tar from a directory that verifies" in in_tar
    assert _cli("verify", frozen.out).returncode == 0  # the original (and the cache) untouched


def test_verify_names_a_missing_blob_everywhere_it_is_needed(frozen: Frozen, broken: Path) -> None:
    config = _blob(broken, frozen.multi.config_digest)
    config.unlink()
    problems = _problems(_cli("verify", broken))
    manifest = frozen.multi.manifest_digest.removeprefix("sha256:")
    assert any(p.startswith(f"{config}: missing: the config of blobs/sha256/{manifest}")
               for p in problems), problems
    assert any(p.startswith(f"{config}: missing: the Config of manifest.json[1]")
               for p in problems), problems
    assert len(problems) == 2, problems
    assert all(p.endswith(f"; {REBUILD}") for p in problems)


def test_verify_names_tags_that_disagree(frozen: Frozen, broken: Path) -> None:
    manifest_json = broken / "manifest.json"
    entries = json.loads(manifest_json.read_text())
    assert entries[0]["RepoTags"] == [frozen.hello_tag]
    entries[0]["RepoTags"] = ["inspect/renamed:1"]
    manifest_json.write_text(json.dumps(entries))
    problems = _problems(_cli("verify", broken))
    assert sorted(problems) == sorted([
        f"{manifest_json}: tag inspect/renamed:1 is not in index.json (no manifest with "
        f"org.opencontainers.image.ref.name=inspect/renamed:1); {REBUILD}",
        f"{broken}/index.json: tag {frozen.hello_tag} (org.opencontainers.image.ref.name) is not "
        f"in manifest.json's RepoTags; {REBUILD}",
        f"{broken}/repositories: {frozen.hello_tag} is not in manifest.json's RepoTags; {REBUILD}",
    ])


def test_the_suggested_rebuild_repairs_the_output(frozen: Frozen, tmp_path: Path) -> None:
    """`doit clean frozen && doit frozen` (what verify suggests) rewrites an edited output."""
    project = Project(tmp_path)
    shutil.copytree(frozen.project.cache, project.cache, copy_function=shutil.copy2)
    project.write_images(json.loads((frozen.project.root / "images.json").read_text())["images"],
                         output="out", platform="linux/amd64")
    shutil.copy2(frozen.project.root / "images.lock.json", tmp_path / "images.lock.json")
    project.doit("frozen")
    manifest_json = project.output / "manifest.json"
    manifest_json.write_text(manifest_json.read_text().replace("inspect/multi:also", "x:y"))
    assert _cli("verify", project.output).returncode == 1
    project.doit("clean", "frozen")
    project.doit("frozen")
    assert _cli("verify", project.output).returncode == 0


def test_verify_checks_legacy_layers_and_configs(frozen: Frozen, broken: Path) -> None:
    entries = json.loads((broken / "manifest.json").read_text())
    repositories = json.loads((broken / "repositories").read_text())
    name, _, tag = frozen.hello_tag.rpartition(":")
    top = repositories[name][tag]
    (broken / top / "layer.tar").write_bytes(b"not the layer")
    shutil.rmtree(broken / repositories["inspect/multi"]["v2"])
    # a config with one diff_id too many, stored under its own (correct) digest
    config = json.loads(frozen.hello.config_bytes)
    config["rootfs"]["diff_ids"].append("sha256:" + "0" * 64)
    data = json.dumps(config).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob(broken, digest).write_bytes(data)
    entries[0]["Config"] = f"blobs/sha256/{digest[7:]}"
    (broken / "manifest.json").write_text(json.dumps(entries))
    problems = _problems(_cli("verify", broken))
    text = "\n".join(problems)
    assert f"{broken}/{top}/layer.tar: differs from the blob {frozen.hello.layers[0].digest}" \
        in text
    assert f"{broken}/repositories: inspect/multi:v2 points at " \
           f"{repositories['inspect/multi']['v2']}, but " in text
    multi_top = repositories["inspect/multi"]["v2"]
    assert f"{broken}/{multi_top}/layer.tar: missing: the legacy copy of layer " \
           f"{frozen.multi.layers[1].digest}" in text
    assert f"{_blob(broken, digest)}: rootfs.diff_ids has 2 entries, but manifest.json[0] has " \
           "1 Layers" in text
    assert f"{broken}/manifest.json: tag {frozen.hello_tag} has config {digest}, but " in text


def test_verify_streams_big_blobs_from_a_tar(frozen: Frozen, broken: Path) -> None:
    """Memory does not grow with blob size: a 64 MiB blob is hashed in 1 MiB chunks."""
    big = broken / "blobs" / "sha256" / "big"
    hasher = hashlib.sha256()
    with big.open("wb") as f:
        for i in range(64):
            chunk = bytes([i]) * (1 << 20)
            hasher.update(chunk)
            f.write(chunk)
    big.rename(big.with_name(hasher.hexdigest()))
    tar = _pack(broken, broken.parent / "big.tar")
    tracemalloc.start()
    try:
        result = verify_output(tar)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, [str(p) for p in result.problems]
    assert result.blob_bytes > 64 << 20
    assert peak < 8 << 20, f"peak {peak} bytes"


def test_errors_are_one_line(frozen: Frozen, tmp_path: Path) -> None:
    missing = _cli("verify", tmp_path / "nothing")
    assert missing.returncode == 1
    assert missing.stderr == f"error: {tmp_path / 'nothing'}: no such file or directory\n"
    gz = tmp_path / "out.tar.gz"
    gz.write_bytes(b"\x1f\x8b" + os.urandom(100))
    for command in ("inspect", "verify"):
        result = _cli(command, gz)
        assert result.returncode == 1
        assert result.stderr.startswith(f"error: {gz}: not a plain tar")
        assert result.stderr.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _cli("inspect", empty)
    assert result.returncode == 1
    assert result.stderr == (f"error: {empty}/index.json: missing; is {empty} an output of "
                             "`doit frozen`?\n")
    problems = _problems(_cli("verify", empty))
    assert [p.split(":")[0] for p in problems] == [
        f"{empty}/{name}" for name in ("manifest.json", "repositories", "index.json", "oci-layout")
    ]


def test_help_has_examples() -> None:
    top = _cli("--help")
    assert top.returncode == 0 and "frozen-tasks verify frozen" in top.stdout
    for command in ("inspect", "verify"):
        result = _cli(command, "--help")
        assert result.returncode == 0
        assert "examples:" in result.stdout and f"frozen-tasks {command} frozen" in result.stdout
    assert _cli().returncode == 2  # a command is required
    if shutil.which("frozen-tasks"):  # the console script, once `pip install -e .` ran
        script = subprocess.run(["frozen-tasks", "verify", "--help"], capture_output=True,
                                text=True, check=True)
        assert "exit status" in script.stdout
