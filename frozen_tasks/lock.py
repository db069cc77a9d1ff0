"""The lock file (``images.lock.json`` beside ``images.json``): what each tag resolved to.

For every image: the reference and platform asked for, the digest the reference resolved to
(``top``: the index or the manifest), the platform manifest, the config and the layers. A later
run fetches by these digests, so the output stays the same after a tag moves upstream; the
``<basename>_lock`` task re-resolves the tags and says what moved. Commit it, like any lock file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import SpecError
from .output.files import write_atomic
from .reference import DIGEST
from .spec import ImageSpec

VERSION = 1


def lock_path(source: Path) -> Path:
    """``images.json`` → ``images.lock.json`` (``ci.json`` → ``ci.lock.json``)."""
    return source.with_suffix(".lock.json")


def read_lock(path: Path) -> dict[str, dict[str, Any]]:
    """The lock's entries by image key; {} when there is no lock yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SpecError(
            f"{path}: cannot read the lock file ({exc}); delete it, and the next "
            "'doit frozen' resolves the tags again and writes it"
        ) from None
    if not isinstance(data, dict):
        data = {}
    entries = data.get("images")
    if (
        data.get("version") != VERSION
        or not isinstance(entries, dict)
        or not all(
            isinstance(e, dict) and DIGEST.fullmatch(str(e.get("top"))) for e in entries.values()
        )
    ):
        raise SpecError(
            f"{path}: not a version {VERSION} lock file; delete it, and the next "
            "'doit frozen' resolves the tags again and writes it"
        )
    return entries


def locked_digest(entries: dict[str, dict[str, Any]], spec: ImageSpec) -> str | None:
    """The digest to fetch for ``spec``: its pin, else the lock's entry for the same reference
    and platform, else None (resolve the tag)."""
    if spec.ref.digest:
        return spec.ref.digest
    entry = entries.get(spec.key)
    if entry and entry.get("ref") == str(spec.ref) and entry.get("platform") == str(spec.platform):
        return entry["top"]
    return None


def lock_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A resolve record as the lock keeps it: digests only, in pull order."""
    return {
        "ref": record["ref"],
        "platform": record["platform"],
        "top": record["top"],
        "index": record["index_digest"],
        "manifest": record["manifest"]["digest"],
        "config": record["config"]["digest"] if record["config"] else None,
        "layers": [layer["digest"] for layer in record["layers"]],
    }


def write_lock(path: Path, records: list[dict[str, Any]]) -> None:
    """Write the lock for these records (in images.json order); unchanged bytes are not
    rewritten."""
    data = {"version": VERSION, "images": {r["key"]: lock_entry(r) for r in records}}
    write_atomic(path, json.dumps(data, indent=2).encode() + b"\n")
