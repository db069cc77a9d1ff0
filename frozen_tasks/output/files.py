"""Filesystem helpers: hard links from the cache (copies across filesystems), atomic writes."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` the same content as ``src``: a hard link where the filesystem allows."""
    try:
        os.link(src, dst)  # a new file, the usual case: one system call
        return
    except FileNotFoundError:
        dst.parent.mkdir(parents=True, exist_ok=True)  # (a missing src fails again below)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):  # dst may be a dangling symlink
            if os.path.samefile(src, dst):
                return
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    tmp = _temp_beside(dst)
    try:
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
    os.replace(tmp, dst)
    # If another thread linked dst to the same inode meanwhile, rename() did nothing (POSIX:
    # both names are links to one file) and tmp is still there.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_bytes() == data:
            return  # unchanged: keep the file (and its mtime) as it is
    except FileNotFoundError:
        pass
    tmp = _temp_beside(path)
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
