"""The README's examples work as written (hosts swapped for the local registry)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.dockerd import DockerDaemon
from support.frozen import REPO, Project
from support.images import HELLO_MESSAGE, make_layer, push_hello_image, push_image
from support.registry import Registry

README = (REPO / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_dodo_example_is_the_shipped_dodo() -> None:
    shipped = (REPO / "dodo.py").read_text().splitlines()
    assert len(shipped) <= 2
    assert _blocks("python")[0].strip() == shipped[-1]


def test_images_json_example_freezes_and_loads(
    registry: Registry, dockerd: DockerDaemon, tmp_path: Path
) -> None:
    # docker.io is reached through a mirror here: the local registry plays Docker Hub.
    busybox = push_hello_image(registry.url, "library/busybox", "1.36")
    push_image(registry.url, "team/app", "v1", [make_layer({"app": b"arm64 app"})],
               platform=("linux", "arm64", "v8"))
    example = _blocks("json")[0]
    assert "registry.example.com:5000" in example and "sha256:<64 hex>" in example
    text = example.replace("registry.example.com:5000", registry.host).replace(
        "sha256:<64 hex>", busybox.manifest_digest)
    project = Project(tmp_path)
    (project.root / "images.json").write_text(text)
    project.extra_env = {"FROZEN_MIRRORS": f"docker.io={registry.url}"}
    run = project.doit()  # `doit` alone: frozen is the default task
    assert "frozen: 2 images" in run.stdout
    manifest = json.loads((project.root / "frozen" / "manifest.json").read_text())
    assert [entry["RepoTags"] for entry in manifest] == [["busybox:1.36"], ["app:v1", "app:frozen"]]

    dockerd.clean()
    dockerd.load_dir(project.root / "frozen")
    assert dockerd.run("busybox:1.36") == HELLO_MESSAGE + "\n"
    arch = dockerd.docker("image", "inspect", "-f", "{{.Architecture}}", "app:frozen")
    assert arch.stdout.strip() == "arm64"
