"""images.json is validated up front: every mistake is named (file, entry, fix) before any
request is made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.frozen import REPO, Project
from support.images import PushedImage
from support.registry import Registry

from frozen_tasks.errors import SpecError
from frozen_tasks.platform import Platform, host_platform
from frozen_tasks.spec import RegistryConfig, load_images

D = "sha256:" + "0123456789abcdef" * 4


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "images.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, {"images": ["busybox", f"quay.io/team/app@{D}"]})
    config = load_images(path)
    assert config.output == tmp_path / "frozen", "output defaults to 'frozen' beside the file"
    assert config.source == path
    assert config.registries == {}
    busybox, app = config.images
    assert str(busybox.ref) == "docker.io/library/busybox:latest"
    assert busybox.platform == host_platform()
    assert busybox.tags == ("busybox:latest",)
    assert busybox.key == "busybox:latest"
    assert app.ref.digest == D and app.ref.tag is None
    assert app.tags == (), "a digest-only reference gets no name"
    assert app.platform == host_platform()


def test_output_is_relative_to_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "project"
    sub.mkdir()
    path = _write(sub, {"output": "out/images", "images": []})
    monkeypatch.chdir(tmp_path)
    assert load_images(path).output == sub / "out" / "images"
    absolute = tmp_path / "elsewhere"
    path = _write(sub, {"output": str(absolute), "images": []})
    assert load_images(path).output == absolute


def test_objects_with_platform_and_tags(tmp_path: Path) -> None:
    path = _write(tmp_path, {
        "output": "out",
        "platform": "linux/arm64",
        "images": [
            "busybox:1.36",
            {"ref": f"localhost:5000/team/app:v1@{D}", "platform": "linux/arm/v7",
             "tags": ["app:v1", "docker.io/library/app:frozen", "example.com/x/app"]},
            {"ref": "busybox:1.36", "platform": "linux/amd64", "tags": ["busybox:1.36-amd64"]},
            {"ref": "busybox:glibc", "tags": []},
        ],
        "registries": {"localhost:5000": {"insecure": False},
                       "my.registry:443": {"insecure": True},
                       "other.example.com": {}},
    })
    config = load_images(path)
    assert config.output == tmp_path / "out"
    plain, app, amd, glibc = config.images
    assert plain.platform == Platform("linux", "arm64"), "the top-level platform is the default"
    assert plain.key == "busybox:1.36"
    assert app.platform == Platform("linux", "arm", "v7")
    assert str(app.platform) == "linux/arm/v7"
    assert app.tags == ("app:v1", "app:frozen", "example.com/x/app:latest")
    assert app.ref.registry == "localhost:5000" and app.ref.digest == D
    assert app.key == f"localhost:5000/team/app:v1@{D}[linux/arm/v7]"
    assert amd.platform == Platform("linux", "amd64")
    assert amd.key == "busybox:1.36[linux/amd64]", "same reference, other platform: no clash"
    assert amd.tags == ("busybox:1.36-amd64",)
    assert glibc.tags == ()
    assert config.registries == {
        "localhost:5000": RegistryConfig(insecure=False),
        "my.registry:443": RegistryConfig(insecure=True),
        "other.example.com": RegistryConfig(),
    }
    assert config.scheme("my.registry:443") == "http"
    assert config.scheme("other.example.com") == "https"
    assert config.scheme("docker.io") == "https"
    assert config.scheme("localhost:5000") == "https", "an explicit insecure: false means TLS"
    assert config.scheme("127.0.0.1:5000") == "http"


def test_the_repositorys_images_json() -> None:
    config = load_images(REPO / "images.json")
    assert config.output == REPO / "frozen"
    assert len(config.images) == 7
    assert all(spec.ref.digest for spec in config.images), "every image is pinned"
    assert all(spec.ref.registry == "docker.io" for spec in config.images)
    names = [spec.tags for spec in config.images]
    assert names == [
        ("busybox:latest",), ("busybox:glibc",), ("debian:trixie-slim",),
        ("hello-world:latest",), ("arm32v7/hello-world:latest",), ("hello-world:amd64",),
        ("hello-world:arm64",),
    ]
    platforms = {spec.tags[0]: str(spec.platform) for spec in config.images}
    assert platforms.pop("arm32v7/hello-world:latest") == "linux/arm/v7"
    assert platforms.pop("hello-world:arm64") == "linux/arm64"
    assert set(platforms.values()) == {"linux/amd64"}
    assert len({spec.key for spec in config.images}) == 7


# (document, where the message points, what it tells the user to do)
INVALID: list[tuple[str, Any, str, str]] = [
    ("mirror-not-a-url", {"images": [], "registries": {"docker.io": {"mirrors": ["mirror:5000"]}}},
     "registries['docker.io'].mirrors", "'https://mirror.example.com'"),
    ("mirror-with-path", {"images": [], "registries": {"docker.io": {"mirrors": ["http://m/x"]}}},
     "registries['docker.io'].mirrors", "no path"),
    ("missing-ca", {"images": [], "registries": {"r.example.com": {"ca": "nope.pem"}}},
     "registries['r.example.com']", "'ca' must name a PEM file"),
    ("bad-registry-key", {"images": [], "registries": {"not a host": {}}},
     "registries['not a host']", "is not a registry host"),
    ("tarball-type", {"images": [], "tarball": 5}, "'tarball'", "a file path string"),
    ("bad-reference", {"images": ["busybox", f"busybox@{D}", "Busybox:1"]},
     "images[2]", "repository names must be lowercase"),
    ("bad-digest", {"images": ["busybox", "busybox@sha256:123"]},
     "images[1]", "'sha256:' followed by 64 lowercase hex digits"),
    ("bad-tag-in-ref", {"images": ["busybox:-1"]}, "images[0]", "letters, digits"),
    ("empty-ref", {"images": [""]}, "images[0]", "e.g. 'busybox:1.36'"),
    ("non-string-ref", {"images": [{"ref": 5}]}, "images[0]", "e.g. 'busybox:1.36'"),
    ("missing-ref", {"images": ["busybox", {"tags": ["a:b"]}]}, "images[1]", "missing 'ref'"),
    ("unknown-top-key", {"images": [], "ouptut": "x"},
     "unknown key 'ouptut'", "allowed keys: images, output, platform, registries"),
    ("unknown-image-key", {"images": ["busybox", {"ref": "busybox:1", "tag": "x"}]},
     "images[1]: unknown key 'tag'", "allowed keys: platform, ref, tags"),
    ("unknown-registry-key",
     {"images": [], "registries": {"localhost:5000": {"insecure": True, "tls": False}}},
     "registries['localhost:5000']: unknown key 'tls'", "allowed keys: ca, insecure, mirrors"),
    ("top-level-list", ["busybox"], "top level", "JSON object with an 'images' list"),
    ("no-images", {"output": "x"}, "'images'", "must be a list"),
    ("images-object", {"images": {"busybox": {}}}, "'images'", "must be a list"),
    ("entry-number", {"images": ["busybox", 42]}, "images[1]",
     "must be a reference string or an object with 'ref'"),
    ("entry-list", {"images": [["busybox"]]}, "images[0]",
     "must be a reference string or an object with 'ref'"),
    ("output-number", {"output": 1, "images": []}, "'output'", "directory path string"),
    ("output-empty", {"output": "", "images": []}, "'output'", "directory path string"),
    ("registries-list", {"images": [], "registries": ["localhost:5000"]}, "'registries'",
     "object keyed by registry host"),
    ("registry-bool", {"images": [], "registries": {"r.example.com": True}},
     "registries['r.example.com']", '{"insecure": true}'),
    ("insecure-string", {"images": [], "registries": {"r.example.com": {"insecure": "yes"}}},
     "registries['r.example.com']", "'insecure' must be true or false"),
    ("tags-string", {"images": [{"ref": "busybox", "tags": "app:v1"}]},
     "images[0]", "'tags' must be a list"),
    ("tags-number", {"images": [{"ref": "busybox", "tags": [1]}]},
     "images[0]", "'tags' must be a list"),
    ("bad-tag", {"images": ["busybox", {"ref": "busybox:1", "tags": ["App:v1"]}]},
     "images[1]: 'tags'", "must be lowercase"),
    ("tag-with-digest", {"images": [{"ref": "busybox", "tags": [f"app:v1@{D}"]}]},
     "images[0]: 'tags'", "has a digest; a tag only names the image"),
    ("top-platform", {"platform": "amd64", "images": []}, "'platform'",
     "os/architecture[/variant]"),
    ("top-platform-type", {"platform": ["linux", "amd64"], "images": []}, "'platform'",
     "os/architecture[/variant]"),
    ("image-platform", {"images": ["busybox", {"ref": "busybox:1", "platform": "linux/"}]},
     "images[1]: 'platform'", "e.g. 'linux/amd64' or 'linux/arm/v7'"),
    ("image-platform-case", {"images": [{"ref": "busybox", "platform": "Linux/AMD64"}]},
     "images[0]: 'platform'", "os/architecture[/variant]"),
    ("image-platform-long", {"images": [{"ref": "busybox", "platform": "linux/arm/v7/x"}]},
     "images[0]: 'platform'", "os/architecture[/variant]"),
    ("duplicate", {"images": ["busybox", "alpine", "docker.io/library/busybox:latest"]},
     "images[2]", "listed twice; remove one"),
    ("duplicate-platform",
     {"images": [{"ref": "busybox", "platform": "linux/arm64"},
                 {"ref": "busybox:latest", "platform": "linux/arm64"}]},
     "images[1]", "listed twice"),
]


@pytest.mark.parametrize(("document", "where", "fix"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_entries(tmp_path: Path, document: Any, where: str, fix: str) -> None:
    path = _write(tmp_path, document)
    with pytest.raises(SpecError) as info:
        load_images(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert where in message, message
    assert fix in message, message
    assert "\n" not in message


def test_invalid_json(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"images": [\n  "busybox",\n]\n}')
    with pytest.raises(SpecError) as info:
        load_images(path)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read it as JSON"), message
    assert "line 3 column 1" in message, "the message says where the syntax error is"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_bytes(b'{"images": ["\xff"]}')
    with pytest.raises(SpecError, match="cannot read it as JSON"):
        load_images(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "images.json"
    with pytest.raises(SpecError) as info:
        load_images(path)
    assert str(info.value) == f"{path}: not found; create it (see README, 'images.json')"


def test_doit_reports_invalid_images_json_before_any_request(
    tmp_path: Path, registry: Registry, hello_image: PushedImage
) -> None:
    project = Project(tmp_path)
    path = project.write_images([
        f"{registry.host}/{hello_image.repo}:{hello_image.tag}@{hello_image.manifest_digest}",
        {"ref": f"{registry.host}/{hello_image.repo}:{hello_image.tag}", "platform": "linux"},
    ])
    before = registry.request_log()
    result = project.doit("frozen", check=False)
    assert result.returncode != 0
    text = (result.stdout + result.stderr).strip()
    assert "Traceback" not in text
    assert text.count("\n") == 0, f"one paragraph, got:\n{text}"
    assert str(path) in text
    assert "images[1]: 'platform': 'linux' is not a platform" in text
    assert "os/architecture[/variant]" in text
    assert registry.request_log() == before, "nothing was asked of the registry"
    assert not project.cache.exists(), "nor was anything written to the cache"
    assert not (tmp_path / "frozen").exists()


def test_one_name_for_two_images_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text(json.dumps({"images": [
        {"ref": "hello-world:latest", "platform": "linux/amd64"},
        {"ref": "hello-world:latest", "platform": "linux/arm64"},
    ]}))
    with pytest.raises(SpecError) as caught:
        load_images(path)
    message = str(caught.value)
    assert str(path) in message and "images[1]" in message
    assert "'hello-world:latest' is already given to images[0]" in message
    assert '"tags"' in message


def test_frozen_mirrors_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"images": [], "registries": {
        "index.docker.io": {"mirrors": ["https://team-mirror.example.com"]}}})
    monkeypatch.setenv("FROZEN_MIRRORS", "docker.io=http://ci-mirror:5000/,http://b:5000;"
                       "quay.io=https://q.example.com")
    config = load_images(path)
    assert config.endpoint("docker.io").mirrors == (
        "http://ci-mirror:5000", "http://b:5000", "https://team-mirror.example.com")
    assert config.endpoint("quay.io").mirrors == ("https://q.example.com",)
    assert config.endpoint("ghcr.io").mirrors == ()
    monkeypatch.setenv("FROZEN_MIRRORS", "docker.io")
    with pytest.raises(SpecError, match=r"\$FROZEN_MIRRORS entry 'docker.io': write it as"):
        load_images(path)
