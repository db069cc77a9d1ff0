"""The content-addressed cache: ``<root>/blobs/sha256/<hex>``.

A blob is written to a unique ``.partial`` file while it is hashed, checked against its digest
and size, then renamed into place. A file at its final path is therefore always verified; the
cache never holds a wrong blob.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import DigestMismatchError, ManifestError
from .output.files import _temp_beside
from .reference import DIGEST

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

CHUNK = 4 << 20  # bytes read and hashed at a time (4 MiB measured fastest here)
WRITE_PIECE = 256 << 10  # bytes per write() call (see BlobWriter.write)


_hashers: ThreadPoolExecutor | None = None
_hashers_lock = threading.Lock()


def _hasher_pool() -> ThreadPoolExecutor:
    """The threads that hash chunks while the downloading threads write them (see
    BlobWriter.write); started on first use, so a run that writes nothing starts none."""
    global _hashers
    with _hashers_lock:
        if _hashers is None:
            from concurrent.futures import ThreadPoolExecutor

            _hashers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="frozen-sha256")
        return _hashers


def blob_relpath(digest: str) -> str:
    """``blobs/sha256/<hex>`` for a ``sha256:<hex>`` digest; refuses anything else."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise ManifestError(f"refusing malformed digest {digest!r}")
    return f"blobs/sha256/{digest[7:]}"


def file_stat(path: str | os.PathLike[str]) -> list[int] | None:
    """(size, mtime in ns, inode) of a file, or None when it is missing; a cheap change check."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def sha256_stream(stream: BinaryIO, chunk_size: int = CHUNK) -> tuple[str, int]:
    """(``sha256:``-digest, size in bytes) of what is left in a binary stream, read
    ``chunk_size`` bytes at a time."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := stream.read(chunk_size):
        hasher.update(chunk)
        size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(``sha256:``-digest, size in bytes) of a file."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def _verified_marker(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def _remember_verified(path: Path) -> None:
    """Record the stat a blob had when its digest was checked (beside it, as a dotfile)."""
    marker = _verified_marker(path)
    tmp = _temp_beside(marker)
    tmp.write_text(json.dumps(file_stat(path)))
    os.replace(tmp, marker)


def _verified_stat(path: Path) -> list[int] | None:
    try:
        return json.loads(_verified_marker(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _link_into_place(verified: Path, final: Path) -> None:
    """Give a verified file its final name in the cache.

    First writer wins: a blob already in place is verified content and keeps its inode, so
    links made to it (and stats recorded of it) stay valid.
    """
    os.chmod(verified, 0o644)  # mkstemp's 0600 would follow the hard links into outputs
    try:
        os.link(verified, final)
    except FileExistsError:
        return
    except OSError:
        os.replace(verified, final)
    _remember_verified(final)


@dataclass
class BlobWriter:
    """A blob being written: hashes each chunk, then ``commit`` verifies and links it in place.

    ``expected_size`` is in bytes (None when unknown); writing past it fails at once, so a
    server that keeps sending is cut off. ``size`` is what the partial file already holds: a
    resumable writer starts after the bytes an interrupted download left (they are hashed
    again, once, so the digest check covers the whole blob).
    """

    final: Path
    digest: str
    expected_size: int | None
    file: Any
    partial: Path
    size: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    _hashing: Future[None] | None = None

    def write(self, chunk: bytes) -> None:
        if self.expected_size is not None and self.size + len(chunk) > self.expected_size:
            raise DigestMismatchError(
                f"blob {self.digest}: received more than the {self.expected_size} bytes announced"
            )
        self.size += len(chunk)
        # Hash this chunk on another core while it is written here (both release the GIL):
        # measured, this is what lets one download go faster than hash-then-write. One chunk
        # in flight keeps the updates in order.
        self._hashed()
        self._hashing = _hasher_pool().submit(self.hasher.update, chunk)
        # Written in pieces, not in one call: the page cache sizes its folios by the write, and
        # large folios were much slower to fill here (on a VM whose free memory goes back to
        # the host). Measured: 512 MiB written as 4 MiB writes took 0.8-1.0 s of kernel time,
        # as 64-256 KiB writes 0.3-0.45 s; a cold W3 went from 1.34 s to 1.02 s.
        view = memoryview(chunk)
        for start in range(0, len(view), WRITE_PIECE):
            self.file.write(view[start : start + WRITE_PIECE])

    def _hashed(self) -> None:
        """Wait for the chunk being hashed, if any."""
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def restart(self) -> None:
        """Drop what was written so far (the server ignored Range, or sent wrong bytes)."""
        self._hashed()
        if self.size == 0:
            return  # truncating an empty file makes ext4 flush the whole blob on close
        self.file.seek(0)
        self.file.truncate()
        self.size = 0
        self.hasher = hashlib.sha256()

    def commit(self) -> Path:
        """Verify size and digest, then link the blob into place; raise DigestMismatchError
        (keeping nothing) when it is not what its digest says."""
        self.file.flush()
        self._hashed()
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatchError(
                f"blob {self.digest}: got {self.size} bytes, expected {self.expected_size}"
            )
        actual = "sha256:" + self.hasher.hexdigest()
        if actual != self.digest:
            raise DigestMismatchError(f"blob {self.digest}: content hashes to {actual}")
        _link_into_place(self.partial, self.final)
        self.discard()
        return self.final

    def discard(self) -> None:
        """Close and delete the partial file."""
        self._hashed()
        self.partial.unlink(missing_ok=True)
        self.file.close()

    def keep(self) -> None:
        """Close, keeping the partial file for a later attempt to resume."""
        self._hashed()
        self.file.close()


class Store:
    """A content-addressed blob cache rooted at ``root``, shared by every image and project."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the blob with this ``sha256:`` digest lives (whether or not it is there)."""
        return self.root / blob_relpath(digest)

    def has(self, digest: str) -> bool:
        """Whether the verified blob is here; False for anything that is not a digest."""
        return bool(DIGEST.fullmatch(digest)) and self.path(digest).is_file()

    def open_writer(self, digest: str, size: int | None) -> BlobWriter:
        """Start writing a blob; call ``commit()`` on success and ``discard()`` on failure."""
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, partial = tempfile.mkstemp(
            prefix=f".{final.name}.", suffix=".partial", dir=final.parent
        )
        return BlobWriter(final, digest, size, os.fdopen(fd, "w+b"), Path(partial))

    def resumable_writer(self, digest: str, size: int | None) -> BlobWriter:
        """A writer continuing ``.<hex>.partial`` if an interrupted download left one.

        The partial is locked (flock) while written; when another process holds it, the
        writer gets a private temporary file instead and starts from zero.
        """
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.partial")
        file = open(partial, "a+b")  # noqa: SIM115 - the writer owns and closes it
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return self.open_writer(digest, size)
        writer = BlobWriter(final, digest, size, file, partial)
        file.seek(0)
        while chunk := file.read(CHUNK):
            writer.size += len(chunk)
            writer.hasher.update(chunk)
        if size is not None and writer.size > size:
            writer.restart()
        return writer

    def put_bytes(self, digest: str, data: bytes) -> Path:
        """Store small content (manifests, configs) held in memory, verified."""
        path = self.path(digest)
        if path.is_file():
            return path
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise DigestMismatchError(f"blob {digest}: content hashes to {actual}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path)
        try:
            tmp.write_bytes(data)
            _link_into_place(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def read_bytes(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def verify(self, digest: str) -> bool:
        """Whether the stored blob is what its name says; a wrong one is removed (False).

        A blob still having the (size, mtime, inode) recorded when it was verified is not read
        again (so a new project sharing a full cache does not re-hash it); any other is
        re-hashed once.
        """
        path = self.path(digest)
        stat = file_stat(path)
        if stat is None:
            return False
        if stat == _verified_stat(path):
            return True
        if sha256_file(path)[0] == digest:
            _remember_verified(path)
            return True
        path.unlink()
        return False
