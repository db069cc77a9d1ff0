"""The doit graph. Task dicts only; the work is in the modules they call.

``<basename>_resolve:<image>``  reference → manifests in the cache → a record (per image)
``<basename>:blob/<hex>``       one config or layer blob into the cache, verified (per blob)
``<basename>:image/<image>``    one image's files in the output directory (per image)
``<basename>:output``           manifest.json, repositories, index.json, oci-layout
``<basename>:lock``             images.lock.json from the records (dodo flow only)
``<basename>:tarball``          the deterministic tarball, when images.json asks for one
``<basename>_lock``             re-resolve every tag, rewrite the lock, say what moved

The blob and image tasks depend on what the manifests say, so ``<basename>`` is created by a
delayed creator that runs once every resolve task has run (doit's ``create_after``).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

from doit import create_after
from doit.exceptions import InvalidDodoFile, TaskFailed
from doit.tools import config_changed

from .errors import FrozenError
from .lock import lock_entry, lock_path, locked_digest, read_lock, write_lock
from .output import TOP_FILES
from .output.files import write_atomic
from .progress import TRACKER
from .reference import parse_reference
from .resolve import record_blobs, resolve_image
from .spec import FrozenConfig, ImageSpec, load_images
from .store import Store, file_stat

TaskDict = dict[str, Any]


def _failing_clearly(action: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into doit task failures with the message alone, not a traceback."""

    @wraps(action)
    def run(*args: Any) -> Any:
        try:
            return action(*args)
        except FrozenError as exc:
            return TaskFailed(str(exc))

    return run


class Freezer:
    """What the tasks of one config share: the config, the cache, the registry clients."""

    def __init__(self, config: FrozenConfig) -> None:
        self.config = config
        self.lock_file = lock_path(config.source) if config.source else None
        self.lock = read_lock(self.lock_file) if self.lock_file else {}
        self.store = Store(config.cache)
        self._pool: Any = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def pool(self) -> Any:
        """The registry clients, created on first use: a run with nothing to fetch never
        imports the network stack (requests), which is most of a no-op run's start-up."""
        with self._lock:
            if self._pool is None:
                from .registry import RegistryPool

                self._pool = RegistryPool(self.config.endpoint)
            return self._pool

    def _state(self, kind: str, spec: ImageSpec) -> Path:
        digest = hashlib.sha256(f"{spec.key}".encode()).hexdigest()[:24]
        return self.config.state_dir / kind / f"{digest}.json"

    def record_path(self, spec: ImageSpec) -> Path:
        return self._state("resolved", spec)

    def stamp_path(self, spec: ImageSpec) -> Path:
        return self._state("images", spec)

    def read_record(self, spec: ImageSpec) -> dict[str, Any] | None:
        try:
            return json.loads(self.record_path(spec).read_text())
        except (FileNotFoundError, ValueError):
            return None

    # -- actions -------------------------------------------------------------------------

    def resolve(self, spec: ImageSpec, digest: str | None) -> dict[str, Any]:
        """Resolve one image (by ``digest`` when given, else by tag) and save its record."""
        ref = spec.ref
        record = resolve_image(
            spec, lambda: self.pool.client(ref.registry, ref.api_host), self.store, digest
        )
        write_atomic(self.record_path(spec), json.dumps(record, indent=1).encode())
        return record

    def resolve_locked(self, spec: ImageSpec) -> None:
        self.resolve(spec, locked_digest(self.lock, spec))

    def write_lock(self, specs: list[ImageSpec]) -> None:
        assert self.lock_file is not None
        write_lock(self.lock_file, [self.read_record(spec) for spec in specs])

    def relock(self) -> None:
        """Resolve every tag again, rewrite the lock, and print what moved."""
        assert self.lock_file is not None
        records, moved = [], 0
        for spec in self.config.images:
            record = self.resolve(spec, spec.ref.digest)
            records.append(record)
            old = self.lock.get(spec.key)
            new = lock_entry(record)
            if old is None:
                print(f"locked  {spec.key}: {new['top']}")
            elif old != new:
                moved += 1
                print(f"moved   {spec.key}: {old['top']} -> {new['top']}")
        write_lock(self.lock_file, records)
        print(f"{self.lock_file}: {len(records)} images, {moved} moved")

    def fetch_blob(self, digest: str, size: int | None, sources: list[str]) -> dict[str, Any]:
        """Make sure the cache holds the verified blob; return its stat for the up-to-date check."""
        if self.store.verify(digest):
            TRACKER.finished(digest, fetched=False)
        else:
            TRACKER.fetching(digest)
            errors = []
            for source in sources:
                ref = parse_reference(source)
                client = self.pool.client(ref.registry, ref.api_host)
                try:
                    client.fetch_blob(
                        ref.repository,
                        digest,
                        size,
                        self.store,
                        what=f"image {ref.familiar()}, blob {digest}",
                        progress=lambda count: TRACKER.advance(digest, count),
                    )
                    TRACKER.finished(digest, fetched=True)
                    break
                except FrozenError as exc:
                    errors.append(str(exc))
            else:
                raise FrozenError("; ".join(errors))
        return _target_stats([self.store.path(digest)])

    def assemble(self, spec: ImageSpec) -> None:
        record = self.read_record(spec)
        if record is None:
            raise FrozenError(
                f"image {spec.key}: its resolve task has not run; run the whole 'frozen' task"
            )
        from .output.image import assemble_image

        stamp = assemble_image(self.config.output, record, list(spec.tags), self.store)
        for warning in stamp["warnings"]:
            self.warn(f"image {spec.key}: {warning}")
        write_atomic(self.stamp_path(spec), json.dumps(stamp, indent=1).encode())

    def write_output(self, specs: list[ImageSpec]) -> dict[str, Any]:
        stamps = [json.loads(self.stamp_path(spec).read_text()) for spec in specs]
        from .output.layout import write_output

        self.config.output.mkdir(parents=True, exist_ok=True)
        write_output(self.config.output, stamps)
        return _target_stats([self.config.output / name for name in TOP_FILES])

    def write_tarball(self) -> dict[str, Any]:
        """Pack the output; print and record (``<tarball>.sha256``) the tar's digest."""
        tarball = self.config.tarball
        assert tarball is not None
        from .output.tarball import write_tarball

        digest = write_tarball(self.config.output, tarball)
        write_atomic(
            tarball.with_name(tarball.name + ".sha256"), f"{digest[7:]}  {tarball.name}\n".encode()
        )
        print(f"{tarball}: {digest}")
        return _target_stats([tarball, tarball.with_name(tarball.name + ".sha256")])

    def warn(self, message: str) -> None:
        # doit captures stdout per task and its capture is not thread-safe: use the real stderr.
        with self._lock:
            if message not in self._warned:
                self._warned.add(message)
                print(f"warning: {message}", file=sys.__stderr__, flush=True)

    def clean_output(self) -> None:
        shutil.rmtree(self.config.output, ignore_errors=True)
        shutil.rmtree(self.config.state_dir / "images", ignore_errors=True)


# -- up-to-date checkers -----------------------------------------------------------------


class RecordCurrent:
    """Up to date when the image is pinned (by its reference or by the lock), its record was
    resolved from that digest for the same reference and platform, and the manifests it names
    are still in the cache. A tag that is neither pinned nor locked is resolved again."""

    def __init__(self, freezer: Freezer, spec: ImageSpec) -> None:
        self.freezer, self.spec = freezer, spec

    def __repr__(self) -> str:  # what `doit info` shows
        want = locked_digest(self.freezer.lock, self.spec)
        pin = f"pinned to {want}" if want else "a tag, not locked yet: resolved again"
        return f"<record of {self.spec.key} for {self.spec.platform}, {pin}>"

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        want = locked_digest(self.freezer.lock, self.spec)
        record = self.freezer.read_record(self.spec)
        if not want or not record or record.get("top") != want:
            return False
        if record["ref"] != str(self.spec.ref):
            return False
        if record["platform"] != str(self.spec.platform):
            return False
        wanted = [record["manifest"]["digest"], record["index_digest"]]
        return all(self.freezer.store.has(d) for d in wanted if d)


def _target_stats(paths: list[Any]) -> dict[str, Any]:
    """What an action returns for ``_targets_unchanged``: the (size, mtime, inode) of each."""
    return {"targets": [file_stat(path) for path in paths]}


def _targets_unchanged(task: Any, values: dict[str, Any]) -> bool:
    """Up to date while every target has the (size, mtime, inode) recorded when it was written
    (for a blob: when it was verified). Nothing is re-hashed; an edited, replaced or deleted
    target is written again."""
    recorded = values.get("targets")
    return bool(recorded) and recorded == [file_stat(path) for path in task.targets]


class OutputIntact:
    """Up to date while every file the image wrote has the stat recorded in its stamp."""

    def __init__(self, freezer: Freezer, spec: ImageSpec) -> None:
        self.freezer, self.spec = freezer, spec

    def __repr__(self) -> str:  # what `doit info` shows
        return f"<files of {self.spec.key} in {self.freezer.config.output} unchanged>"

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        try:
            stamp = json.loads(self.freezer.stamp_path(self.spec).read_text())
        except (FileNotFoundError, ValueError):
            return False
        out = self.freezer.config.output
        return all(file_stat(out / rel) == stat for rel, stat in stamp["files"].items())


def _tar_mtime() -> int:
    from .output.tarball import default_mtime

    return default_mtime()


def _fewer_collections() -> None:
    """Make the cyclic garbage collector skip what start-up built.

    Importing doit and requests creates a few hundred thousand long-lived objects, and the
    collector walked them again and again (65 passes in a cold W1 run). They are frozen out of
    its sight and the young generation is collected 14x less often. Reference counting still
    frees everything at once; only garbage cycles wait longer. Measured on the rig (median of
    13): cold W1 0.774 -> 0.730 s, no-op W1 0.257 -> 0.223 s.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 100)


def _unsynced_doit_state() -> None:
    """Let doit's sqlite3 state commit without fsync (``PRAGMA synchronous=OFF``).

    Measured: the fsync of doit's closing commit made ext4 write out the blobs just fetched
    (0.8 s for 512 MiB) before the run could end. Locking between concurrent runs is unchanged;
    only a power cut can now lose the last run's state, and then tasks just run again (every
    target is verified content). Other backends, or a doit without these attributes, are left
    alone.
    """
    from doit.globals import Globals

    conn = getattr(getattr(Globals.dep_manager, "backend", None), "_conn", None)
    if conn is not None and hasattr(conn, "execute"):
        conn.execute("PRAGMA synchronous=OFF")


# -- creators ------------------------------------------------------------------------------


def _resolve_tasks(fz: Freezer, basename: str) -> Iterator[TaskDict]:
    """Resolve each image's reference to its platform manifest (network for tags only)."""
    _fewer_collections()
    _unsynced_doit_state()
    yield {
        "basename": f"{basename}_resolve",
        "name": None,
        "doc": "resolve image references to manifests",
    }
    for spec in fz.config.images:
        yield {
            "basename": f"{basename}_resolve",
            "name": spec.key,
            "doc": f"resolve {spec.ref} for {spec.platform}",
            "actions": [(_failing_clearly(fz.resolve_locked), [spec])],
            "targets": [str(fz.record_path(spec))],
            "uptodate": [RecordCurrent(fz, spec)],
            "clean": True,
        }
    if fz.lock_file:
        yield {
            "basename": f"{basename}_lock",
            "doc": f"re-resolve tags, rewrite {fz.lock_file.name}, say what moved",
            "actions": [_failing_clearly(fz.relock)],
            "uptodate": [False],
        }


def _freeze_tasks(fz: Freezer, basename: str) -> Iterator[TaskDict]:
    """Fetch blobs, assemble images, write the output directory."""
    specs, blobs = [], {}
    for spec in fz.config.images:
        record = fz.read_record(spec)
        if record is None:
            continue  # not resolved yet (e.g. `doit list` before a first run)
        specs.append((spec, record))
        for desc in record_blobs(record):
            entry = blobs.setdefault(
                desc["digest"], {"size": desc.get("size"), "sources": [], "images": []}
            )
            if record["ref"] not in entry["sources"]:
                entry["sources"].append(record["ref"])
            entry["images"].append(spec.key)
    TRACKER.plan(
        fz.config.output,
        [spec.key for spec, _ in specs],
        {digest: (entry["size"], entry["images"]) for digest, entry in blobs.items()},
    )
    yield {
        "basename": basename,
        "name": None,
        "doc": f"freeze the images into {fz.config.output}",
    }
    for digest, entry in blobs.items():
        yield {
            "basename": basename,
            "name": f"blob/{digest[7:]}",
            "doc": f"fetch {digest} into the cache",
            "actions": [
                (_failing_clearly(fz.fetch_blob), [digest, entry["size"], entry["sources"]])
            ],
            "targets": [str(fz.store.path(digest))],
            "uptodate": [_targets_unchanged],
        }
    for spec, record in specs:
        yield {
            "basename": basename,
            "name": f"image/{spec.key}",
            "doc": f"write {spec.key} into {fz.config.output}",
            "actions": [(_failing_clearly(fz.assemble), [spec])],
            "file_dep": [str(fz.record_path(spec))],
            "task_dep": [f"{basename}:blob/{d['digest'][7:]}" for d in record_blobs(record)],
            "targets": [str(fz.stamp_path(spec))],
            "uptodate": [
                config_changed({"tags": list(spec.tags), "output": str(fz.config.output)}),
                OutputIntact(fz, spec),
            ],
        }
    done = [spec for spec, _ in specs]
    yield {
        "basename": basename,
        "name": "output",
        "doc": "write manifest.json, repositories, index.json, oci-layout",
        "actions": [(_failing_clearly(fz.write_output), [done])],
        "file_dep": [str(fz.stamp_path(spec)) for spec in done],
        "task_dep": [f"{basename}:image/{spec.key}" for spec in done],
        "targets": [str(fz.config.output / name) for name in TOP_FILES],
        "uptodate": [
            config_changed({"images": [spec.key for spec in done]}),
            _targets_unchanged,
        ],
        "clean": [fz.clean_output],
    }
    if fz.config.tarball:
        tarball = fz.config.tarball
        yield {
            "basename": basename,
            "name": "tarball",
            "doc": f"pack {fz.config.output} into {tarball}, byte for byte reproducible",
            "actions": [_failing_clearly(fz.write_tarball)],
            "file_dep": [str(fz.config.output / name) for name in TOP_FILES]
            + [str(fz.stamp_path(spec)) for spec in done],
            "task_dep": [f"{basename}:output"],
            "targets": [str(tarball), str(tarball.with_name(tarball.name + ".sha256"))],
            "uptodate": [config_changed({"mtime": _tar_mtime()}), _targets_unchanged],
            "clean": True,
        }
    if fz.lock_file:
        yield {
            "basename": basename,
            "name": "lock",
            "doc": f"write {fz.lock_file.name}: the digests every image resolved to",
            "actions": [(_failing_clearly(fz.write_lock), [done])],
            "file_dep": [str(fz.record_path(spec)) for spec in done],
            "targets": [str(fz.lock_file)],
            "uptodate": [config_changed({"images": [spec.key for spec in done]})],
        }


def frozen_task_creators(
    images: str | os.PathLike[str] | FrozenConfig, basename: str = "frozen"
) -> dict[str, Callable[[], Iterator[TaskDict]]]:
    """doit task creators for the images of an images.json file (or a FrozenConfig).

    Returns ``{"task_<basename>_resolve": ..., "task_<basename>": ...}``: put them in a
    dodo.py's namespace with ``globals().update(...)`` and ``doit <basename>`` freezes the
    images; several basenames can live side by side. Creators, not task dicts, because the
    blob tasks can only be created once the manifests are known (doit's ``create_after``).
    The file is read on first use, relative to the directory doit runs in; an invalid one
    becomes doit's one-line error (from SpecError). Outputs (``manifest.json``, the tarball)
    are task targets: depend on them with ``file_dep`` plus ``task_dep: ["<basename>"]``.
    """
    state: dict[str, Freezer] = {}

    def load() -> FrozenConfig:
        if isinstance(images, FrozenConfig):
            return images
        return load_images(Path(images).resolve())

    def freezer() -> Freezer:
        if "freezer" not in state:
            try:
                state["freezer"] = Freezer(load())
            except FrozenError as exc:
                raise InvalidDodoFile(str(exc)) from None
        return state["freezer"]

    # doit reads the source of every creator (inspect.getsourcelines, to order them) at each
    # start; tokenizing these two lines instead of the generators' hundred costs less.
    def resolve_tasks() -> Iterator[TaskDict]:
        """Resolve each image's reference to its platform manifest (network for tags only)."""
        return _resolve_tasks(freezer(), basename)

    @create_after(executed=f"{basename}_resolve")
    def freeze_tasks() -> Iterator[TaskDict]:
        """Fetch blobs, assemble images, write the output directory."""
        return _freeze_tasks(freezer(), basename)

    return {f"task_{basename}_resolve": resolve_tasks, f"task_{basename}": freeze_tasks}
