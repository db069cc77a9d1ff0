"""Image references are normalised the way docker does it (pure parsing, no network)."""

from __future__ import annotations

import pytest

from frozen_tasks.errors import InvalidReferenceError, SpecError
from frozen_tasks.reference import DOCKER_HUB_API, is_loopback, parse_reference

D = "sha256:" + "0123456789abcdef" * 4

# text → (registry, repository, tag, digest, API host, familiar name, str())
VALID = [
    # no host → Docker Hub; one component → library/; no tag → latest
    ("busybox", "docker.io", "library/busybox", "latest", None, DOCKER_HUB_API,
     "busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, DOCKER_HUB_API,
     "busybox", "docker.io/library/busybox:1.36"),
    ("arm32v7/hello-world:latest", "docker.io", "arm32v7/hello-world", "latest", None,
     DOCKER_HUB_API, "arm32v7/hello-world", "docker.io/arm32v7/hello-world:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None, DOCKER_HUB_API,
     "busybox", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     DOCKER_HUB_API, "busybox", "docker.io/library/busybox:1.36"),
    ("docker.io/team/app", "docker.io", "team/app", "latest", None, DOCKER_HUB_API,
     "team/app", "docker.io/team/app:latest"),
    # index.docker.io is Docker Hub under its legacy name
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None,
     DOCKER_HUB_API, "busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     DOCKER_HUB_API, "busybox", "docker.io/library/busybox:1.36"),
    # a registry host keeps the path as written: no library/ is added
    ("quay.io/app", "quay.io", "app", "latest", None, "quay.io", "quay.io/app",
     "quay.io/app:latest"),
    ("example.com:5000/team/app:v1", "example.com:5000", "team/app", "v1", None,
     "example.com:5000", "example.com:5000/team/app", "example.com:5000/team/app:v1"),
    ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000", "team/app", "v1", None, "127.0.0.1:5000",
     "127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app:v1"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost", "localhost/app",
     "localhost/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000", "app", "v1", None, "localhost:5000",
     "localhost:5000/app", "localhost:5000/app:v1"),
    ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None, "[::1]:5000", "[::1]:5000/app",
     "[::1]:5000/app:v1"),
    ("[::1]/app", "[::1]", "app", "latest", None, "[::1]", "[::1]/app", "[::1]/app:latest"),
    ("localhost:5000/library/busybox", "localhost:5000", "library/busybox", "latest", None,
     "localhost:5000", "localhost:5000/library/busybox", "localhost:5000/library/busybox:latest"),
    # nested paths and docker's separators (., _, __, any number of -)
    ("example.com/deep/nested/path/odd:1.0.0-rc.1_x", "example.com", "deep/nested/path/odd",
     "1.0.0-rc.1_x", None, "example.com", "example.com/deep/nested/path/odd",
     "example.com/deep/nested/path/odd:1.0.0-rc.1_x"),
    ("a.b/c__d/e--f:_T", "a.b", "c__d/e--f", "_T", None, "a.b", "a.b/c__d/e--f",
     "a.b/c__d/e--f:_T"),
    # a first component without '.', ':' and not localhost is a path, not a host
    ("team/app", "docker.io", "team/app", "latest", None, DOCKER_HUB_API, "team/app",
     "docker.io/team/app:latest"),
    ("localhost", "docker.io", "library/localhost", "latest", None, DOCKER_HUB_API,
     "localhost", "docker.io/library/localhost:latest"),
    ("foo:5000", "docker.io", "library/foo", "5000", None, DOCKER_HUB_API, "foo",
     "docker.io/library/foo:5000"),
    # digest pins, with and without a tag: no 'latest' is made up when a digest is given
    (f"busybox@{D}", "docker.io", "library/busybox", None, D, DOCKER_HUB_API, "busybox",
     f"docker.io/library/busybox@{D}"),
    (f"busybox:1.36@{D}", "docker.io", "library/busybox", "1.36", D, DOCKER_HUB_API, "busybox",
     f"docker.io/library/busybox:1.36@{D}"),
    (f"localhost:5000/app:v1@{D}", "localhost:5000", "app", "v1", D, "localhost:5000",
     "localhost:5000/app", f"localhost:5000/app:v1@{D}"),
    (f"quay.io/team/app@{D}", "quay.io", "team/app", None, D, "quay.io", "quay.io/team/app",
     f"quay.io/team/app@{D}"),
    # a tag of 128 characters is the longest allowed
    ("busybox:" + "a" * 128, "docker.io", "library/busybox", "a" * 128, None, DOCKER_HUB_API,
     "busybox", "docker.io/library/busybox:" + "a" * 128),
]


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "api_host", "familiar_name", "full"),
    VALID,
    ids=[case[0][:60] for case in VALID],
)
def test_normalisation(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    api_host: str,
    familiar_name: str,
    full: str,
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry, repository, tag, digest)
    assert ref.api_host == api_host
    assert ref.familiar_name == familiar_name
    assert ref.full_name == f"{registry}/{repository}"
    assert str(ref) == full
    assert ref.reference == (digest or tag)
    # the normalised form parses back to the same reference, and so does the familiar one
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar()) == ref


@pytest.mark.parametrize(
    ("text", "familiar"),
    [
        ("busybox", "busybox:latest"),
        ("docker.io/library/busybox:1.36", "busybox:1.36"),
        ("index.docker.io/library/busybox:1.36", "busybox:1.36"),
        ("arm32v7/hello-world:latest", "arm32v7/hello-world:latest"),
        ("docker.io/arm32v7/hello-world", "arm32v7/hello-world:latest"),
        (f"busybox:glibc@{D}", f"busybox:glibc@{D}"),
        (f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        ("localhost:5000/library/busybox:1", "localhost:5000/library/busybox:1"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
    ],
)
def test_familiar_names_never_spell_out_docker_hub(text: str, familiar: str) -> None:
    ref = parse_reference(text)
    assert ref.familiar() == familiar
    assert "docker.io" not in ref.familiar_name
    assert not ref.familiar_name.startswith("library/")


def test_the_same_image_written_differently_is_equal() -> None:
    spellings = ["busybox", "busybox:latest", "library/busybox", "docker.io/busybox",
                 "docker.io/library/busybox:latest", "index.docker.io/library/busybox"]
    assert len({parse_reference(s) for s in spellings}) == 1


INVALID = [
    ("", "is not an image reference"),
    ("Busybox", "repository names must be lowercase"),
    ("team/App:v1", "repository names must be lowercase"),
    ("localhost:5000/Team/app", "repository names must be lowercase"),
    ("busybox@sha256:abc", "not 'sha256:' followed by 64 lowercase hex digits"),
    ("busybox@sha256:" + "A" * 64, "not 'sha256:' followed by 64 lowercase hex digits"),
    ("busybox@sha512:" + "a" * 128, "not 'sha256:' followed by 64 lowercase hex digits"),
    ("busybox@", "not 'sha256:' followed by 64 lowercase hex digits"),
    ("busybox:1.36@latest", "digest 'latest'"),
    ("busybox:-x", "tag '-x' is invalid"),
    ("busybox:.x", "tag '.x' is invalid"),
    ("busybox:", "tag '' is invalid"),
    ("busybox:a+b", "tag 'a+b' is invalid"),
    ("busybox:tä", "tag 'tä' is invalid"),  # \w is ASCII only in docker's (Go's) grammar
    ("busybox:" + "a" * 129, "at most 128"),
    ("a/b:c:d", "repository component 'b:c' is invalid"),
    ("a//b", "repository component '' is invalid"),
    ("/busybox", "repository component '' is invalid"),
    ("busybox/", "repository component '' is invalid"),
    ("_busybox", "repository component '_busybox' is invalid"),
    ("a___b", "repository component 'a___b' is invalid"),
    ("bus box", "repository component 'bus box' is invalid"),
    ("example.com:port/app", "'example.com:port' is not a valid registry host[:port]"),
    ("-bad.com/app", "'-bad.com' is not a valid registry host[:port]"),
    ("[::1/app", "not a valid registry host[:port]"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[c[0][:40] or "empty" for c in INVALID])
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value), "the message quotes what was written"
    assert isinstance(info.value, SpecError), "a bad reference is a spec error (no network)"


@pytest.mark.parametrize("value", [None, 5, ["busybox"]])
def test_non_string_is_not_a_reference(value: object) -> None:
    with pytest.raises(InvalidReferenceError, match="is not an image reference"):
        parse_reference(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10:80", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("docker.io", False),
        ("registry-1.docker.io", False),
        ("example.com:5000", False),
        ("10.0.0.1:5000", False),
        ("0.0.0.0:5000", False),
        ("[::2]:5000", False),
        ("localhost.example.com", False),
        ("127.0.0.1.example.com:5000", False),
    ],
)
def test_is_loopback(registry: str, loopback: bool) -> None:
    assert is_loopback(registry) is loopback
