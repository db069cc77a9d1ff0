"""A reproducible tar of the output directory: the same bytes for the same images.

``write_tarball(out, tar)`` packs what ``tar -cC out .`` would, but byte-identical across
runs, machines, cache states and parallelism:

- members sorted by path components (a directory right before its contents), named as
  ``tar -cC DIR .`` names them (``./``, ``./blobs/``, ``./manifest.json``);
- mtime fixed (the argument, else ``$SOURCE_DATE_EPOCH``, else 0), uid/gid 0, empty
  uname/gname, mode 0755 for directories and 0644 for files, no atime/ctime records;
- every file is stored in full, also when it is another name of an inode (a layer is both
  ``<id>/layer.tar`` and ``blobs/sha256/<hex>``), so what a name holds never depends on the
  inodes on disk. Hard-link members would make the tar much smaller, but only dockerd reads
  them: skopeo 1.9 (``copy docker-archive:``) and podman 4.3 (``load``) read a hard-link
  member as empty and fail the layer's digest check (tried, see tests/test_tarball.py);
- dotfiles (temporary files, bookkeeping) are left out, at any depth.

The tar is written to a temporary file beside ``tar_path``, hashed while it is written, then
renamed into place; files are streamed, so memory does not grow with layer size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..store import CHUNK
from .files import _temp_beside

DIR_MODE = 0o755
FILE_MODE = 0o644


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path components below the output directory; () is the root
    path: Path
    is_dir: bool
    size: int

    @property
    def name(self) -> str:
        return "./" + "/".join(self.parts) if self.parts else "."


class _HashingWriter:
    """Writes to ``raw`` and hashes what passes; ``tell`` is what tarfile asks of a file."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hasher = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.hasher.update(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset


def default_mtime() -> int:
    """``int($SOURCE_DATE_EPOCH)`` when set (and not empty), else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"SOURCE_DATE_EPOCH must be an integer, not {value!r}") from None


def _entries(out_dir: Path) -> list[_Entry]:
    """Every directory and regular file below out_dir (dotfiles left out), sorted."""
    found: list[_Entry] = []

    def visit(path: Path, parts: tuple[str, ...]) -> None:
        st = os.stat(path, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            found.append(_Entry(parts, path, True, 0))
            with os.scandir(path) as it:
                children = [e.name for e in it if not e.name.startswith(".")]
            for child in children:
                visit(path / child, (*parts, child))
        elif stat.S_ISREG(st.st_mode):
            found.append(_Entry(parts, path, False, st.st_size))
        else:
            raise ValueError(f"{path}: not a regular file or directory; refusing to pack it")

    visit(out_dir, ())
    found.sort(key=lambda e: e.parts)
    return found


def _info(name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_members(tar: tarfile.TarFile, entries: list[_Entry], mtime: int) -> None:
    for entry in entries:
        info = _info(entry.name, mtime)
        if entry.is_dir:
            info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
            tar.addfile(info)
            continue
        info.type, info.mode, info.size = tarfile.REGTYPE, FILE_MODE, entry.size
        with open(entry.path, "rb") as f:
            tar.addfile(info, f)  # streamed, copybufsize at a time
            if f.read(1):
                raise RuntimeError(f"{entry.path} grew while it was packed")


def write_tarball(out_dir: Path, tar_path: Path, mtime: int | None = None) -> str:
    """Write a reproducible tar of ``out_dir`` to ``tar_path``; return its ``sha256:`` digest.

    ``mtime`` (seconds since the epoch) is every member's mtime; by default
    ``$SOURCE_DATE_EPOCH``, else 0. ``tar_path`` is replaced atomically.
    """
    out_dir, tar_path = Path(out_dir), Path(tar_path)
    if mtime is None:
        mtime = default_mtime()
    if mtime < 0:
        raise ValueError(f"mtime must not be negative, not {mtime}")
    if not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: no such output directory")
    tar_abs, out_abs = tar_path.resolve(), out_dir.resolve()
    if tar_abs.is_relative_to(out_abs) and not any(
        part.startswith(".") for part in tar_abs.relative_to(out_abs).parts
    ):
        raise ValueError(f"{tar_path} is inside {out_dir}, so it would pack itself")
    entries = _entries(out_dir)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(tar_path)
    try:
        with open(tmp, "wb") as raw:
            writer = _HashingWriter(raw)
            with tarfile.open(
                fileobj=writer, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK
            ) as tar:
                _write_members(tar, entries, mtime)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, tar_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return "sha256:" + writer.hasher.hexdigest()
