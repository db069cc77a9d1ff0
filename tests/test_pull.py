"""Every manifest kind, pulled from a real registry into one directory that dockerd loads."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.dockerd import DockerDaemon
from support.frozen import Project, blob_gets, executed
from support.images import busybox_layer, make_layer, push_image, push_index, push_schema1
from support.process import skopeo
from support.registry import Registry, start_registry

ARM = ("linux", "arm64", "v8")


def _echo(registry: Registry, repo: str, tag: str | None, message: str, **kw):
    """A runnable busybox image printing `message`, plus the extra layers given."""
    layers = [busybox_layer(), *kw.pop("extra", [])]
    return push_image(registry.url, repo, tag, layers,
                      config_overrides={"Cmd": ["/bin/echo", message]}, **kw)


@dataclass
class Scenario:
    registry: Registry
    project: Project
    first_run: subprocess.CompletedProcess[str]
    first_log: list[str]  # the registry's requests during the first run
    messages: dict[str, str]  # tag in the output → what `docker run` prints
    arm_layer: str


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory,
             schema1_registry: Registry) -> Iterator[Scenario]:
    """One images.json with every kind, frozen once; its own registry, so logs are ours."""
    registry = start_registry(tmp_path_factory.mktemp("kinds-registry"))
    try:
        host = registry.host
        schema2 = _echo(registry, "kinds/schema2", "v1", "from schema2")
        _echo(registry, "kinds/oci", "v1", "from oci", fmt="oci")
        arm_layer = make_layer({"arm.txt": b"arm64 only"})
        arm = push_image(registry.url, "kinds/index", None, [arm_layer], fmt="oci", platform=ARM)
        amd = _echo(registry, "kinds/index", None, "from oci index", fmt="oci")
        index = push_index(registry.url, "kinds/index", "v1", [amd, arm], fmt="oci")
        arm_list = push_image(registry.url, "kinds/list", None, [arm_layer], platform=ARM)
        amd_list = _echo(registry, "kinds/list", None, "from docker list")
        push_index(registry.url, "kinds/list", "v1", [arm_list, amd_list], fmt="docker")
        _echo(registry, "deep/nested/path/odd", "1.0.0-rc.1_x", "from nested")
        twice = make_layer({"twice.txt": b"same layer twice"})
        _echo(registry, "kinds/dup", "v1", "from dup", extra=[twice, twice])
        plain = make_layer({"plain.txt": b"uncompressed"}, compress=None)
        _echo(registry, "kinds/plain", "v1", "from plain", extra=[plain])
        _echo(registry, "kinds/legacy", "v1", "from schema1")
        legacy_digest = push_schema1(registry, schema1_registry, "kinds/legacy", "v1")

        project = Project(tmp_path_factory.mktemp("kinds-project"))
        project.write_images([
            f"{host}/kinds/schema2:v1@{schema2.manifest_digest}",
            f"{host}/kinds/oci:v1",
            {"ref": f"{host}/kinds/index:v1@{index.manifest_digest}", "tags": ["kinds/index:v1"]},
            {"ref": f"{host}/kinds/index:v1", "platform": "linux/arm64",
             "tags": ["kinds/index:arm64"]},
            {"ref": f"{host}/kinds/list:v1", "platform": "linux/amd64",
             "tags": ["kinds/list:v1", "kinds/list:also"]},
            f"{host}/deep/nested/path/odd:1.0.0-rc.1_x",
            f"{host}/kinds/dup:v1",
            f"{host}/kinds/plain:v1",
            {"ref": f"{schema1_registry.host}/kinds/legacy:v1@{legacy_digest}",
             "tags": ["kinds/legacy:v1"]},
        ], output="out", platform="linux/amd64")
        before = len(registry.request_log())
        first_run = project.doit("frozen")
        first_log = registry.request_log()[before:]
        messages = {
            f"{host}/kinds/schema2:v1": "from schema2",
            f"{host}/kinds/oci:v1": "from oci",
            "kinds/index:v1": "from oci index",
            "kinds/list:v1": "from docker list",
            "kinds/list:also": "from docker list",
            f"{host}/deep/nested/path/odd:1.0.0-rc.1_x": "from nested",
            f"{host}/kinds/dup:v1": "from dup",
            f"{host}/kinds/plain:v1": "from plain",
            "kinds/legacy:v1": "from schema1",
        }
        yield Scenario(registry, project, first_run, first_log, messages, arm_layer.digest)
    finally:
        registry.stop()


def test_every_kind_loads_and_runs_in_dockerd(scenario: Scenario, dockerd: DockerDaemon) -> None:
    dockerd.clean()  # a daemon holding the layers already would not read them
    loaded = dockerd.load_dir(scenario.project.output)
    for tag, message in scenario.messages.items():
        assert f"Loaded image: {tag}\n" in loaded
        assert dockerd.run(tag) == message + "\n", tag
    assert "Loaded image: kinds/index:arm64" in loaded
    arch = dockerd.docker("image", "inspect", "-f", "{{.Architecture}}", "kinds/index:arm64")
    assert arch.stdout.strip() == "arm64"


def test_skopeo_reads_both_formats(scenario: Scenario, tmp_path: Path) -> None:
    out = scenario.project.output
    archive = tmp_path / "out.tar"
    subprocess.run(["tar", "-cf", archive, "-C", out, "."], check=True)
    for tag in scenario.messages:
        qualified = tag if "/" in tag.split("/")[0] or "." in tag.split("/")[0] else tag
        if tag.startswith("kinds/"):
            qualified = f"docker.io/{tag}"
        info = json.loads(skopeo("inspect", f"docker-archive:{archive}:{qualified}").stdout)
        assert info["Architecture"] == "amd64"
        oci = json.loads(skopeo("inspect", f"oci:{out}:{tag}").stdout)
        assert oci["Layers"] == info["Layers"] or len(oci["Layers"]) == len(info["Layers"])


def test_output_layout(scenario: Scenario) -> None:
    out = scenario.project.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest) == 9
    index = json.loads((out / "index.json").read_text())
    names = [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]]
    assert "kinds/list:also" in names and len(names) == 10
    assert all(d["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
               for d in index["manifests"])
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    repositories = json.loads((out / "repositories").read_text())
    assert set(repositories["kinds/list"]) == {"v1", "also"}
    for entry in manifest:
        for rel in [entry["Config"], *entry["Layers"]]:
            path = out / rel
            cached = scenario.project.cache / rel
            assert path.stat().st_ino == cached.stat().st_ino, "hard-linked from the cache"
    for layer_id in repositories["kinds/list"].values():
        legacy = out / layer_id
        assert (legacy / "VERSION").read_text() == "1.0"
        assert json.loads((legacy / "json").read_text())["id"] == layer_id
        assert (legacy / "layer.tar").is_file()
    dup = next(e for e in manifest if e["RepoTags"] == [f"{scenario.registry.host}/kinds/dup:v1"])
    assert len(dup["Layers"]) == 3 and dup["Layers"][1] == dup["Layers"][2]
    # doit's state and our bookkeeping stay out of what `tar -cC out .` packs.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_each_blob_fetched_once(scenario: Scenario) -> None:
    gets = Counter(line.rsplit("/", 1)[1] for line in blob_gets(scenario.first_log))
    assert gets, "the scenario fetched blobs"
    assert max(gets.values()) == 1, gets
    assert gets[busybox_layer().digest] == 1  # shared by 8 images, stored and fetched once
    assert gets[scenario.arm_layer] == 1  # shared by the index and the list


def test_no_op_rerun_fetches_no_blob(scenario: Scenario) -> None:
    before = len(scenario.registry.request_log())
    rerun = scenario.project.doit("frozen")
    new = scenario.registry.request_log()[before:]
    assert blob_gets(new) == []
    assert executed(rerun, "frozen:") == []
    # Pinned and locked (images.lock.json): not one HTTP request.
    assert new == []


def test_doit_list_info_and_clean(scenario: Scenario, tmp_path: Path) -> None:
    project = scenario.project
    listing = project.doit("list", "--all").stdout
    assert "frozen_resolve" in listing and "frozen:output" in listing
    info = project.doit("info", "frozen:output").stdout
    assert "manifest.json" in info
    saved = tmp_path / "saved"
    os.rename(project.output, saved)
    try:
        project.doit("frozen")
        assert (project.output / "manifest.json").is_file(), "a deleted output is rebuilt"
        project.doit("clean", "frozen")
        assert not project.output.exists()
        assert project.cache.joinpath("blobs/sha256").is_dir(), "the shared cache is kept"
    finally:
        if project.output.exists():
            import shutil

            shutil.rmtree(project.output)
        os.rename(saved, project.output)


def test_no_platform_match_lists_platforms(scenario: Scenario) -> None:
    project = Project(scenario.project.root / "s390x")
    project.write_images([f"{scenario.registry.host}/kinds/index:v1"], platform="linux/s390x")
    result = project.doit("frozen", check=False)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "no manifest for platform linux/s390x" in text
    assert "linux/amd64, linux/arm64/v8" in text
    assert "Traceback" not in text
