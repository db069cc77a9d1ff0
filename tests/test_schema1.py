"""Tests of frozen_tasks.schema1, on real signed manifests made by data/schema1/make_fixture.py."""

import base64
import hashlib
import json
from pathlib import Path

import pytest

from frozen_tasks.errors import DigestMismatchError, ManifestError
from frozen_tasks.schema1 import (
    schema1_config,
    schema1_digest,
    schema1_layers,
    schema1_payload,
    schema1_platform,
)

DATA = Path(__file__).parent / "data" / "schema1"
# skopeo's conversion (compact JSON, formatTail "}") and the registry's own (3-space indent).
FIXTURES = ["skopeo", "registry"]
EMPTY_GZIP = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
DIFF_IDS = json.loads((DATA / "diff_ids.json").read_text())


def _raw(name: str) -> bytes:
    return (DATA / f"{name}.manifest.json").read_bytes()


def _recorded_digest(name: str) -> str:
    return (DATA / f"{name}.digest").read_text().strip()


def _manifest(name: str) -> dict:
    return json.loads(schema1_payload(_raw(name)))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(prefix: bytes, *headers: object) -> bytes:
    """A signed manifest: ``prefix`` + signatures whose protected headers are ``headers``."""
    signatures = [
        {"protected": _b64url(json.dumps(h).encode()) if isinstance(h, dict) else h}
        for h in headers
    ]
    return prefix + b',"signatures":' + json.dumps(signatures).encode() + b"}"


PREFIX = b'{"schemaVersion":1'
GOOD_HEADER = {"formatLength": len(PREFIX), "formatTail": _b64url(b"}")}


def _id(n: int) -> str:
    return f"{n:064x}"


def _blob(n: int) -> str:
    return f"sha256:{n:064x}"


def _chain(*v1s: dict, os: str | None = None) -> dict:
    """A schema1 manifest of ``v1s`` (bottom first), ids 1, 2, ... chained by parent."""
    history, fs_layers = [], []
    for n, extra in enumerate(v1s, start=1):
        v1 = {"id": _id(n), **({"parent": _id(n - 1)} if n > 1 else {}), **extra}
        history.insert(0, {"v1Compatibility": json.dumps(v1)})
        fs_layers.insert(0, {"blobSum": _blob(n)})
    if os:
        top = json.loads(history[0]["v1Compatibility"])
        history[0]["v1Compatibility"] = json.dumps({**top, "os": os})
    return {
        "schemaVersion": 1,
        "architecture": "arm64",
        "fsLayers": fs_layers,
        "history": history,
    }


# --- digest -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_digest_matches_registry(name: str) -> None:
    assert schema1_digest(_raw(name)) == _recorded_digest(name)


@pytest.mark.parametrize("name", FIXTURES)
def test_payload_is_manifest_without_signatures(name: str) -> None:
    raw = _raw(name)
    payload = schema1_payload(raw)
    expected = json.loads(raw)
    del expected["signatures"]
    assert json.loads(payload) == expected
    # The canonical payload, served unsigned, digests as its own bytes: same digest.
    assert schema1_digest(payload) == _recorded_digest(name)
    assert schema1_payload(payload) == payload


@pytest.mark.parametrize("name", FIXTURES)
def test_payload_is_what_was_signed(name: str) -> None:
    """The ES256 signature verifies over protected + "." + base64url(payload)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    raw = _raw(name)
    (signature,) = json.loads(raw)["signatures"]
    jwk = signature["header"]["jwk"]

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    key = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64(jwk["x"])), int.from_bytes(unb64(jwk["y"])), ec.SECP256R1()
    ).public_key()
    sig = unb64(signature["signature"])
    der = utils.encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
    signed = f"{signature['protected']}.{_b64url(schema1_payload(raw))}".encode()
    key.verify(der, signed, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("name", FIXTURES)
def test_tampered_payload_changes_digest(name: str) -> None:
    raw = _raw(name)
    tampered = raw.replace(b'"test/schema1"', b'"test/schemaX"', 1)
    assert tampered != raw
    assert schema1_digest(tampered) != _recorded_digest(name)


@pytest.mark.parametrize("name", FIXTURES)
def test_signature_bytes_are_not_digested(name: str) -> None:
    raw = _raw(name)
    tampered = raw.replace(b'"alg"', b'"alg" ', 1)
    assert tampered != raw
    assert schema1_digest(tampered) == _recorded_digest(name)


def test_expected_digest() -> None:
    raw = _raw("skopeo")
    recorded = _recorded_digest("skopeo")
    assert schema1_digest(raw, expected=recorded) == recorded
    with pytest.raises(DigestMismatchError, match="not to the requested"):
        schema1_digest(raw, expected="sha256:" + "0" * 64)


def test_unsigned_digest_is_raw_sha256() -> None:
    raw = b'{"schemaVersion": 1, "name": "x"}\n'
    assert schema1_digest(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_synthetic_signed_manifest() -> None:
    raw = _signed(PREFIX, GOOD_HEADER, GOOD_HEADER)
    assert schema1_payload(raw) == PREFIX + b"}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "manifest is not valid JSON"),
        (b"\xff\xfe{}", "manifest is not valid JSON"),
        (b"[1, 2]", "manifest is not a JSON object"),
        (b'{"signatures": []}', "non-empty list"),
        (b'{"signatures": {}}', "non-empty list"),
        (b'{"signatures": ["x"]}', r"signatures\[0\] is not a JSON object"),
        (b'{"signatures": [{}]}', "protected is not a base64url"),
        (_signed(PREFIX, "ab+/"), "protected is not a base64url"),
        (_signed(PREFIX, "abcde"), "protected is not a base64url"),
        (_signed(PREFIX, _b64url(b"{nope")), "protected is not valid JSON"),
        (_signed(PREFIX, {"formatTail": "fQ"}), "formatLength must be an integer"),
        (_signed(PREFIX, {**GOOD_HEADER, "formatLength": 0}), "formatLength"),
        (_signed(PREFIX, {**GOOD_HEADER, "formatLength": -1}), "formatLength"),
        (_signed(PREFIX, {**GOOD_HEADER, "formatLength": 10**6}), "formatLength"),
        (_signed(PREFIX, {**GOOD_HEADER, "formatLength": 18.0}), "formatLength"),
        (_signed(PREFIX, {**GOOD_HEADER, "formatLength": True}), "formatLength"),
        (_signed(PREFIX, {"formatLength": len(PREFIX)}), "formatTail is not a base64url"),
        (
            _signed(PREFIX, GOOD_HEADER, {**GOOD_HEADER, "formatTail": _b64url(b"\n}")}),
            "disagree",
        ),
        (_signed(PREFIX, {**GOOD_HEADER, "formatLength": 5}), "signed payload"),
        (_signed(PREFIX, {**GOOD_HEADER, "formatTail": ""}), "signed payload"),
    ],
)
def test_malformed_signed_manifest(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        schema1_digest(raw)


# --- layers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_layers_bottom_first_with_throwaway(name: str) -> None:
    manifest = _manifest(name)
    layers = schema1_layers(manifest)
    fs_layers = [entry["blobSum"] for entry in manifest["fsLayers"]]
    assert [layer.digest for layer in layers] == fs_layers[::-1]
    assert [layer.empty for layer in layers] == [False, True, False, True]
    assert all(layer.digest == EMPTY_GZIP for layer in layers if layer.empty)
    assert "parent" not in layers[0].v1_compat
    for lower, upper in zip(layers, layers[1:], strict=False):
        assert upper.v1_compat["parent"] == lower.v1_compat["id"]


def test_empty_gzip_without_throwaway_is_a_layer() -> None:
    manifest = _chain({}, {"throwaway": False})
    manifest["fsLayers"][0]["blobSum"] = EMPTY_GZIP
    assert [layer.empty for layer in schema1_layers(manifest)] == [False, False]


def test_adjacent_duplicate_ids_are_dropped() -> None:
    manifest = _chain({}, {"comment": "kept"})
    manifest["fsLayers"].insert(0, {"blobSum": _blob(9)})
    top = json.loads(manifest["history"][0]["v1Compatibility"])
    manifest["history"].insert(0, {"v1Compatibility": json.dumps({**top, "comment": "dup"})})
    layers = schema1_layers(manifest)
    assert [layer.digest for layer in layers] == [_blob(1), _blob(2)]
    assert layers[1].v1_compat["comment"] == "kept"


def test_windows_base_layer_may_have_foreign_parent() -> None:
    linux = _chain({"parent": _id(99)})
    with pytest.raises(ManifestError, match="parent"):
        schema1_layers(linux)
    windows = _chain({"parent": _id(99), "os": "windows"})
    assert len(schema1_layers(windows)) == 1


def _broken(change: str) -> dict:
    manifest = _chain({}, {}, {})
    if change == "version":
        manifest["schemaVersion"] = 2
    elif change == "version-bool":
        manifest["schemaVersion"] = True
    elif change == "no-layers":
        manifest["fsLayers"], manifest["history"] = [], []
    elif change == "length":
        manifest["history"].pop()
    elif change == "fslayers-type":
        manifest["fsLayers"] = None
    elif change.startswith("blobsum="):
        manifest["fsLayers"][1] = {"blobSum": change.removeprefix("blobsum=")}
    elif change == "fslayer-type":
        manifest["fsLayers"][1] = "sha256:" + "0" * 64
    elif change.startswith("v1="):
        manifest["history"][1] = {"v1Compatibility": change.removeprefix("v1=")}
    elif change == "v1-type":
        manifest["history"][1] = {"v1Compatibility": {"id": _id(2)}}
    elif change == "duplicate":
        manifest["history"][0] = {"v1Compatibility": json.dumps({"id": _id(1), "parent": _id(2)})}
    elif change.startswith("set:"):
        key, value = change.removeprefix("set:").split("=", 1)
        v1 = json.loads(manifest["history"][1]["v1Compatibility"])
        manifest["history"][1]["v1Compatibility"] = json.dumps({**v1, key: json.loads(value)})
    return manifest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("version", "unsupported schemaVersion 2"),
        ("version-bool", "unsupported schemaVersion"),
        ("no-layers", "no fsLayers"),
        ("length", "3 fsLayers but 2 history"),
        ("fslayers-type", "must be lists"),
        ("blobsum=sha256:abc", r"fsLayers\[1\].blobSum"),
        ("blobsum=sha256:" + "A" * 64, r"fsLayers\[1\].blobSum"),
        ("blobsum=md5:" + "0" * 64, r"fsLayers\[1\].blobSum"),
        ("fslayer-type", r"fsLayers\[1\].blobSum"),
        ("v1={", r"history\[1\].v1Compatibility is not valid JSON"),
        ("v1=[]", r"history\[1\].v1Compatibility is not a JSON object"),
        ("v1-type", r"history\[1\].v1Compatibility must be a string"),
        ('set:id="abc"', "id is not 64 hex"),
        ("set:id=7", "id must be a string"),
        (f'set:parent="{_id(7)}"', r"history\[1\].*parent .* is not the id of the layer below"),
        ("set:parent=1", "parent must be a string"),
        ('set:throwaway="true"', "throwaway must be a boolean"),
        ("duplicate", "appears more than once"),
    ],
)
def test_malformed_layers(change: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        schema1_layers(_broken(change))


# --- platform -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_platform_of_fixture(name: str) -> None:
    assert schema1_platform(_manifest(name)) == ("linux", "amd64")


def test_platform_defaults_and_fallbacks() -> None:
    assert schema1_platform(_chain({})) == ("linux", "arm64")
    assert schema1_platform(_chain({}, os="windows")) == ("windows", "arm64")
    manifest = _chain({"architecture": "s390x"})
    del manifest["architecture"]
    assert schema1_platform(manifest) == ("linux", "s390x")
    manifest["history"] = [{"v1Compatibility": json.dumps({"id": _id(1)})}]
    with pytest.raises(ManifestError, match="architecture"):
        schema1_platform(manifest)


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_config_of_fixture(name: str) -> None:
    manifest = _manifest(name)
    raw_config = schema1_config(manifest, DIFF_IDS)
    assert raw_config == schema1_config(manifest, list(DIFF_IDS))
    config = json.loads(raw_config)
    assert config["rootfs"] == {"type": "layers", "diff_ids": DIFF_IDS}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"] == {"Cmd": ["cat", "/hello.txt"], "Env": ["PATH=/bin", "GREETING=hi"]}
    assert config["author"] == "frozen-tasks tests"
    assert not {"id", "parent", "throwaway", "Size", "parent_id", "layer_id"} & config.keys()
    assert config["history"] == [
        {"created": "2020-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop) ADD hello.txt /"},
        {
            "created": "2020-01-01T00:00:02Z",
            "created_by": "/bin/sh -c #(nop)  ENV GREETING=hi",
            "empty_layer": True,
        },
        {
            "comment": "second layer",
            "created": "2020-01-01T00:00:03Z",
            "created_by": "/bin/sh -c echo world > /world.txt",
        },
        {"author": "frozen-tasks tests", "created": "2020-01-01T00:00:04Z", "empty_layer": True},
    ]


def test_config_is_the_same_for_both_conversions() -> None:
    configs = {schema1_config(_manifest(name), DIFF_IDS) for name in FIXTURES}
    assert len(configs) == 1


def test_config_fills_platform_and_cmd_forms() -> None:
    manifest = _chain(
        {"container_config": {"Cmd": "/bin/sh -c make"}},
        {"container_config": {"Cmd": None}, "throwaway": True},
        {"container_config": None, "layer_id": "x", "parent_id": "y", "Size": 12},
        os="windows",
    )
    config = json.loads(schema1_config(manifest, [_blob(1), _blob(3)]))
    assert (config["os"], config["architecture"], config["config"]) == ("windows", "arm64", {})
    assert config["history"] == [{"created_by": "/bin/sh -c make"}, {"empty_layer": True}, {}]
    # The top v1Compatibility is kept as moby keeps it, bar its v1-only keys.
    assert sorted(config) == [
        "architecture", "config", "container_config", "history", "os", "rootfs"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("diff_ids", "message"),
    [
        ([_blob(1)], "2 non-empty layers but 1 diff_ids"),
        ([_blob(1), _blob(2), _blob(3)], "2 non-empty layers but 3 diff_ids"),
        ([_blob(1), "sha256:xyz"], "diff_id 'sha256:xyz'"),
    ],
)
def test_config_rejects_bad_diff_ids(diff_ids: list[str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        schema1_config(_chain({}, {}), diff_ids)


@pytest.mark.parametrize(
    ("v1", "message"),
    [
        ({"container_config": {"Cmd": [1]}}, "Cmd is malformed"),
        ({"container_config": []}, "container_config is not an object"),
        ({"created": 5}, "created must be a string"),
    ],
)
def test_config_rejects_bad_history(v1: dict, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        schema1_config(_chain(v1), [_blob(1)])
