"""The seed-compatible command line: ``frozen-download DIR image[:tag][@digest] ...``."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.dockerd import DockerDaemon
from support.frozen import Project, blob_gets
from support.images import (
    HELLO_MESSAGE,
    PushedImage,
    busybox_layer,
    make_layer,
    push_hello_image,
    push_image,
)
from support.registry import Registry

_LEGACY_DIR = re.compile(r"[0-9a-f]{64}")
_TOP = {"manifest.json", "repositories", "index.json", "oci-layout", "blobs"}


@dataclass
class Download:
    project: Project
    out: Path
    args: list[str]  # DIR and the references
    tags: list[str]  # what docker load names the images
    by_tag: PushedImage
    pinned: PushedImage
    first: subprocess.CompletedProcess[str]
    first_log: list[str]


@pytest.fixture(scope="module")
def download(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Download]:
    """Two images, one by tag and one by tag@digest, downloaded once into a fresh DIR."""
    host = registry.host
    by_tag = push_hello_image(registry.url, "cli/hello", "1")
    extra = make_layer({"pinned.txt": b"pinned by digest"})
    pinned = push_image(registry.url, "cli/pinned", "2", [busybox_layer(), extra],
                        config_overrides={"Cmd": ["/bin/echo", HELLO_MESSAGE]})
    project = Project(tmp_path_factory.mktemp("cli"))
    out = project.root / "out"
    refs = [f"{host}/cli/hello:1", f"{host}/cli/pinned:2@{pinned.manifest_digest}"]
    args = [str(out), *refs]
    before = len(registry.request_log())
    first = project.download(*args)
    yield Download(project, out, args, [f"{host}/cli/hello:1", f"{host}/cli/pinned:2"],
                   by_tag, pinned, first, registry.request_log()[before:])


def test_writes_a_docker_load_directory(download: Download) -> None:
    out = download.out
    assert download.first.stdout.splitlines()[-3:] == [
        f"Download of images into '{out}' complete.",
        "Use something like the following to load the result into a Docker daemon:",
        f"  tar -cC '{out}' . | docker load",
    ]
    names = {p.name for p in out.iterdir()}
    legacy = {n for n in names - _TOP if _LEGACY_DIR.fullmatch(n)}
    assert names - legacy == _TOP, "only the docker/OCI files: no doit database, no dotfiles"
    assert len(legacy) == 2  # busybox (shared, same chain ID) and pinned's busybox → extra
    for name in legacy:
        assert (out / name).is_dir()
        assert {p.name for p in (out / name).iterdir()} == {"VERSION", "json", "layer.tar"}
    assert sorted(out.rglob(".*")) == [], "no temporary or hidden files anywhere"
    assert {p.parent.relative_to(out) for p in out.rglob("*") if p.is_file()} == {
        Path("."), Path("blobs/sha256"), *map(Path, legacy)}
    assert all(_LEGACY_DIR.fullmatch(p.name) for p in (out / "blobs/sha256").iterdir())
    fetched = {line.rsplit("/", 1)[1] for line in blob_gets(download.first_log)}
    assert fetched == {download.by_tag.config_digest, download.pinned.config_digest,
                       *download.pinned.layer_digests}


def test_result_loads_and_runs_in_dockerd(download: Download, dockerd: DockerDaemon) -> None:
    dockerd.clean()
    loaded = dockerd.load_dir(download.out)
    for tag in download.tags:
        assert f"Loaded image: {tag}\n" in loaded
        assert dockerd.run(tag) == HELLO_MESSAGE + "\n"


def test_rerun_fetches_nothing(download: Download, registry: Registry) -> None:
    before = len(registry.request_log())
    again = download.project.download(*download.args)
    new = registry.request_log()[before:]
    assert blob_gets(new) == []
    assert [line for line in new if "/v2/cli/pinned/" in line] == [], "pinned: no request"
    assert again.stdout.splitlines()[-1] == f"  tar -cC '{download.out}' . | docker load"


def test_no_arguments_prints_usage(tmp_path: Path) -> None:
    result = Project(tmp_path).download(check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("usage: frozen-download ")
    assert result.stdout == ""


def test_help_prints_usage_with_an_example(tmp_path: Path) -> None:
    result = Project(tmp_path).download("--help")
    assert result.stdout.startswith("usage: frozen-download ")
    assert re.search(r"^\s+frozen-download \S+ \S+:\S+", result.stdout, re.MULTILINE)
    assert result.stderr == ""


@pytest.mark.parametrize("bad", ["Upper/Case", "{host}/Upper/Case:1", "{host}/app@sha256:abc"])
def test_invalid_reference_fails_before_any_request(
    bad: str, registry: Registry, tmp_path: Path
) -> None:
    bad = bad.format(host=registry.host)
    project = Project(tmp_path)
    out = tmp_path / "out"
    before = registry.request_log()
    # A valid reference to the same registry first: nothing is fetched for it either.
    result = project.download(str(out), f"{registry.host}/cli/hello:1", bad, check=False)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and repr(bad) in lines[0], lines
    assert registry.request_log() == before
    assert not out.exists()
