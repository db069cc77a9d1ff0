"""A rebuild does exactly the work that changed, in parallel or not, even two at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.frozen import Project, blob_gets, executed
from support.images import PushedImage, busybox_layer, make_layer, push_image
from support.registry import Registry

BASE = [make_layer({f"base{i}.txt": f"base layer {i}".encode() * 50}) for i in range(4)]


@pytest.fixture(scope="module")
def versions(registry: Registry) -> tuple[PushedImage, PushedImage]:
    """app:v1 and app:v2: six layers each, the first five shared."""
    v1 = push_image(registry.url, "incr/app", "v1",
                    [busybox_layer(), *BASE, make_layer({"top": b"v1"})])
    v2 = push_image(registry.url, "incr/app", "v2",
                    [busybox_layer(), *BASE, make_layer({"top": b"v2"})])
    return v1, v2


def _tree(out: Path) -> dict[str, tuple[int, int]]:
    """Every file under out with (inode, mtime_ns): what was rewritten shows."""
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file()}


def test_changing_one_image_fetches_only_new_blobs(
    registry: Registry, versions: tuple[PushedImage, PushedImage], tmp_path: Path
) -> None:
    v1, v2 = versions
    project = Project(tmp_path)
    kept = push_image(registry.url, "incr/kept", "v1", [busybox_layer(), BASE[0]])
    other = f"{registry.host}/incr/kept:v1@{kept.manifest_digest}"
    project.write_images([{"ref": other, "tags": ["keep:v1"]},
                          {"ref": f"{registry.host}/incr/app:v1@{v1.manifest_digest}",
                           "tags": ["app:current"]}])
    project.doit("frozen")
    before_tree = _tree(project.output)
    before = len(registry.request_log())

    project.write_images([{"ref": other, "tags": ["keep:v1"]},
                          {"ref": f"{registry.host}/incr/app:v2@{v2.manifest_digest}",
                           "tags": ["app:current"]}])
    run = project.doit("frozen")
    fetched = sorted(line.rsplit("/", 1)[1] for line in blob_gets(
        registry.request_log()[before:]))
    assert fetched == sorted([v2.config_digest, v2.layer_digests[-1]])
    assert "frozen:image/keep:v1" not in " ".join(executed(run))
    after_tree = _tree(project.output)
    unchanged = [rel for rel in before_tree if after_tree.get(rel) == before_tree[rel]]
    # The shared layers (and the untouched image's files) were not rewritten.
    for digest in v1.layer_digests[:5]:
        assert f"blobs/sha256/{digest[7:]}" in unchanged
    assert f"blobs/sha256/{kept.config_digest[7:]}" in unchanged
    assert f"blobs/sha256/{v1.config_digest[7:]}" not in after_tree, "v1 is gone"
    manifest = json.loads((project.output / "manifest.json").read_text())
    assert [e["RepoTags"] for e in manifest] == [["keep:v1"], ["app:current"]]
    assert manifest[1]["Config"] == f"blobs/sha256/{v2.config_digest[7:]}"


def _frozen(registry: Registry, image: PushedImage, tmp_path: Path) -> Project:
    """A project that has frozen `image` (pinned) once."""
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/incr/app:{image.tag}@{image.manifest_digest}"])
    project.doit("frozen")
    return project


def test_deleted_output_file_is_restored(
    registry: Registry, versions: tuple[PushedImage, PushedImage], tmp_path: Path
) -> None:
    v1, _ = versions
    project = _frozen(registry, v1, tmp_path)
    victim = project.output / "blobs" / "sha256" / v1.layer_digests[2][7:]
    victim.unlink()
    before = len(registry.request_log())
    run = project.doit("frozen")
    assert victim.is_file()
    assert [e for e in executed(run) if e.startswith("frozen:image/")], "the image was redone"
    assert blob_gets(registry.request_log()[before:]) == [], "from the cache, not the network"


def test_parallel_and_serial_give_the_same_output(
    registry: Registry, versions: tuple[PushedImage, PushedImage], tmp_path: Path
) -> None:
    v1, v2 = versions
    outputs = []
    for name, args in (("serial", ["-n", "1"]), ("parallel", ["-n", "8", "-P", "thread"])):
        project = Project(tmp_path / name)
        project.write_images([f"{registry.host}/incr/app:v1@{v1.manifest_digest}",
                              f"{registry.host}/incr/app:v2@{v2.manifest_digest}"])
        project.doit(*args, "frozen")
        out = project.output
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                        if p.is_file()})
    assert outputs[0] == outputs[1]


def test_two_runs_at_once_on_one_project(
    registry: Registry, versions: tuple[PushedImage, PushedImage], tmp_path: Path
) -> None:
    v1, v2 = versions
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/incr/app:v1@{v1.manifest_digest}",
                          f"{registry.host}/incr/app:v2@{v2.manifest_digest}"])
    runs = [subprocess.Popen([sys.executable, "-m", "doit", "frozen"], cwd=project.root,
                             env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stdout.read()) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    third = project.doit("frozen")
    assert executed(third) == [], "the doit state is intact: everything is up to date"
    manifest = json.loads((project.output / "manifest.json").read_text())
    assert len(manifest) == 2
    for entry in manifest:
        for rel in [entry["Config"], *entry["Layers"]]:
            from frozen_tasks.store import sha256_file

            assert sha256_file(project.output / rel)[0] == "sha256:" + rel.rsplit("/", 1)[1]
    cache = project.cache / "blobs" / "sha256"
    leftovers = [p.name for p in cache.iterdir()
                 if p.name.startswith(".") and not p.name.endswith(".verified")]
    assert leftovers == [], "no partial or temporary file left"


def test_hand_edited_manifest_json_is_rewritten(
    registry: Registry, versions: tuple[PushedImage, PushedImage], tmp_path: Path
) -> None:
    v1, _ = versions
    project = _frozen(registry, v1, tmp_path)
    manifest = project.output / "manifest.json"
    good = manifest.read_bytes()
    manifest.write_text("[]")
    run = project.doit("frozen")
    assert executed(run, "frozen:") == ["frozen:output"]
    assert manifest.read_bytes() == good


def test_new_project_on_a_full_cache_asks_no_registry(
    registry: Registry, versions: tuple[PushedImage, PushedImage], tmp_path: Path
) -> None:
    """Everything pinned is in the shared cache: no request, and the network stack (requests)
    is never imported."""
    v1, _ = versions
    first = _frozen(registry, v1, tmp_path / "first")
    second = Project(tmp_path / "second")
    second.cache = first.cache
    second.write_images([f"{registry.host}/incr/app:v1@{v1.manifest_digest}"])
    second.extra_env["PYTHONPROFILEIMPORTTIME"] = "1"
    before = len(registry.request_log())

    run = second.doit("frozen")

    assert registry.request_log()[before:] == []
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    assert "frozen_tasks.tasks" in imported
    assert not {"requests", "urllib3", "frozen_tasks.registry"} & imported
    manifest = json.loads((second.output / "manifest.json").read_text())
    assert manifest[0]["Config"] == f"blobs/sha256/{v1.config_digest[7:]}"
