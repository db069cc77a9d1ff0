"""images.lock.json: a tag resolved once stays resolved, until `doit frozen_lock` moves it."""

from __future__ import annotations

import json
from pathlib import Path

from support.frozen import Project, executed
from support.images import make_layer, push_image
from support.registry import Registry


def _push(registry: Registry, message: bytes):
    return push_image(registry.url, "lock/app", "latest", [make_layer({"m.txt": message})])


def _lock(project: Project) -> dict:
    return json.loads((project.root / "images.lock.json").read_text())


def test_lock_pins_a_tag_until_relocked(registry: Registry, tmp_path: Path) -> None:
    first = _push(registry, b"first")
    project = Project(tmp_path)
    key = f"{registry.host}/lock/app:latest"
    project.write_images([key])
    project.doit("frozen")
    entry = _lock(project)["images"][key]
    assert entry == {
        "ref": key, "platform": entry["platform"], "top": first.manifest_digest, "index": None,
        "manifest": first.manifest_digest, "config": first.config_digest,
        "layers": first.layer_digests,
    }
    manifest_json = (project.output / "manifest.json").read_bytes()

    second = _push(registry, b"second")  # the tag moves upstream
    before = len(registry.request_log())
    rerun = project.doit("frozen")
    assert registry.request_log()[before:] == [], "locked and cached: no HTTP request at all"
    assert executed(rerun) == []
    assert (project.output / "manifest.json").read_bytes() == manifest_json

    relock = project.doit("frozen_lock")
    assert f"moved   {key}: {first.manifest_digest} -> {second.manifest_digest}" in relock.stdout
    assert "1 moved" in relock.stdout
    assert _lock(project)["images"][key]["top"] == second.manifest_digest

    project.doit("frozen")
    configs = [e["Config"] for e in json.loads((project.output / "manifest.json").read_text())]
    assert configs == [f"blobs/sha256/{second.config_digest[7:]}"]


def test_deleted_lock_is_written_again(registry: Registry, tmp_path: Path) -> None:
    pushed = _push(registry, b"third")
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/lock/app:latest"])
    project.doit("frozen")
    (project.root / "images.lock.json").unlink()
    project.doit("frozen")
    assert _lock(project)["images"][f"{registry.host}/lock/app:latest"]["top"] == (
        pushed.manifest_digest
    )


def test_a_broken_lock_is_reported_with_the_fix(registry: Registry, tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/lock/app:latest"])
    lock = project.root / "images.lock.json"
    lock.write_text("{not json")
    result = project.doit("frozen", check=False)
    assert result.returncode != 0
    assert f"{lock}: cannot read the lock file" in result.stderr
    assert "delete it, and the next 'doit frozen'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_lock_of_another_shape_is_refused(registry: Registry, tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/lock/app:latest"])
    (project.root / "images.lock.json").write_text("[1, 2]")
    result = project.doit("frozen", check=False)
    assert result.returncode != 0 and "not a version 1 lock file" in result.stderr
