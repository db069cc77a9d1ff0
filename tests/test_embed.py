"""frozen-tasks inside someone else's dodo.py: two image sets, a tarball, a downstream task."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from support.frozen import Project, executed
from support.images import make_layer, push_hello_image, push_image
from support.registry import Registry

DODO = '''\
from frozen_tasks import DOIT_CONFIG, frozen_task_creators

DOIT_CONFIG = {**DOIT_CONFIG, "default_tasks": ["consume"]}
globals().update(frozen_task_creators("ci.json", basename="frozen_ci"))
globals().update(frozen_task_creators("e2e.json", basename="frozen_e2e"))


def task_consume():
    """Stands for `docker load -i ci.tar` in a CI pipeline."""
    return {
        "file_dep": ["ci.tar"],
        "task_dep": ["frozen_ci"],
        "actions": ["sha256sum ci.tar > consumed.txt"],
        "targets": ["consumed.txt"],
    }
'''


def _write(path: Path, images: list[str], **top: object) -> None:
    path.write_text(json.dumps({"images": images, **top}))


def test_downstream_task_follows_the_tarball(registry: Registry, tmp_path: Path) -> None:
    first = push_hello_image(registry.url, "embed/app", "v1")
    other = push_image(registry.url, "embed/e2e", "v1", [make_layer({"e2e": b"e2e"})])
    project = Project(tmp_path)
    (tmp_path / "dodo.py").write_text(DODO)
    _write(tmp_path / "ci.json", [f"{registry.host}/embed/app:v1@{first.manifest_digest}"],
           output="ci-out", tarball="ci.tar")
    _write(tmp_path / "e2e.json", [f"{registry.host}/embed/e2e:v1@{other.manifest_digest}"],
           output="e2e-out")

    run = project.doit()  # the default task: consume, after frozen_ci
    assert "consume" in executed(run) and "frozen_ci:tarball" in executed(run)
    tar = tmp_path / "ci.tar"
    digest = hashlib.sha256(tar.read_bytes()).hexdigest()
    assert f"sha256:{digest}" in run.stdout, "the tarball's digest is printed"
    assert (tmp_path / "ci.tar.sha256").read_text() == f"{digest}  ci.tar\n"
    assert (tmp_path / "consumed.txt").read_text().startswith(digest)
    assert not (tmp_path / "e2e-out").exists(), "only what `consume` needs was built"

    again = project.doit()
    assert executed(again) == [], "nothing changed: the downstream task is up to date"

    layer = make_layer({"v2.txt": b"second version"})
    second = push_image(registry.url, "embed/app", "v2", [*first.layers, layer],
                        config_overrides={"Cmd": ["/bin/echo", "v2"]})
    _write(tmp_path / "ci.json", [f"{registry.host}/embed/app:v2@{second.manifest_digest}"],
           output="ci-out", tarball="ci.tar")
    changed = project.doit()
    assert "consume" in executed(changed)
    assert hashlib.sha256(tar.read_bytes()).hexdigest() != digest

    both = project.doit("frozen_e2e")
    assert (tmp_path / "e2e-out" / "manifest.json").is_file()
    assert executed(both, "frozen_ci") == []


def test_tarball_is_the_same_bytes_from_another_cache_and_serial(
    registry: Registry, tmp_path: Path
) -> None:
    image = push_hello_image(registry.url, "embed/same", "v1")
    tars = []
    for name, args in (("parallel", ()), ("serial", ("-n", "1"))):
        project = Project(tmp_path / name)
        project.write_images([f"{registry.host}/embed/same:v1@{image.manifest_digest}"],
                             tarball="frozen.tar")
        project.doit(*args, "frozen")
        tars.append((project.root / "frozen.tar").read_bytes())
    assert tars[0] == tars[1]
