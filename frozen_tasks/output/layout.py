"""The top-level files of the output directory, and removal of what no image uses any more."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from .. import manifest as mf
from .files import write_atomic

_OURS = re.compile(r"[a-f0-9]{64}")


def _dump(data: Any) -> bytes:
    return json.dumps(data, indent=2).encode() + b"\n"


def write_output(out: Path, stamps: list[dict[str, Any]]) -> None:
    """Write manifest.json, repositories, index.json and oci-layout for these images, in order,
    then delete blobs and legacy directories that none of them uses (images removed from the
    list must not be loaded)."""
    repositories: dict[str, dict[str, str]] = {}
    for stamp in stamps:
        for name, tags in stamp["repositories"].items():
            repositories.setdefault(name, {}).update(tags)
    index = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_INDEX,
        "manifests": [d for stamp in stamps for d in stamp["index"]],
    }
    write_atomic(out / "oci-layout", _dump({"imageLayoutVersion": "1.0.0"}))
    write_atomic(out / "index.json", _dump(index))
    write_atomic(out / "repositories", _dump(repositories))
    write_atomic(out / "manifest.json", _dump([stamp["manifest_json"] for stamp in stamps]))
    _prune(out, {rel for stamp in stamps for rel in stamp["files"]})


def _prune(out: Path, keep: set[str]) -> None:
    blobs = out / "blobs" / "sha256"
    if blobs.is_dir():
        for path in blobs.iterdir():
            if f"blobs/sha256/{path.name}" not in keep:
                path.unlink()
    kept_dirs = {rel.split("/", 1)[0] for rel in keep}
    for path in out.iterdir():
        if path.is_dir() and _OURS.fullmatch(path.name) and path.name not in kept_dirs:
            shutil.rmtree(path)
