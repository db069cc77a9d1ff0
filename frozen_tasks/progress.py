"""Progress and the closing summary, shown by a doit reporter.

The tasks report what happens to each blob to ``TRACKER`` (thread-safe); ``FrozenReporter``
draws it. On a terminal: live bars on stderr (rich) for the whole run (bytes, throughput, ETA)
and for each blob being fetched, named by its image. Otherwise (CI logs): doit's usual task
lines plus one line per fetched blob. Either way the run ends with a summary: images, blobs
fetched and reused, bytes, time, the output and the command that loads it.

doit's own stdout capture is not thread-safe, so nothing here prints from a task thread: the
reporter runs in doit's main thread, and the live display refreshes from rich's own thread.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from doit.reporter import ConsoleReporter

MIB = 1 << 20


@dataclass
class _Blob:
    size: int | None
    images: list[str]
    done: int = 0
    state: str = "pending"  # pending, fetching, fetched, reused


@dataclass
class Tracker:
    """What the run is doing: the images and blobs planned, bytes fetched, blobs reused."""

    output: Path | None = None
    images: list[str] = field(default_factory=list)
    blobs: dict[str, _Blob] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    load_hint: bool = True  # frozen-download ends with the seed's own hint instead
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(
        self, output: Path, images: list[str], blobs: dict[str, tuple[int | None, list[str]]]
    ) -> None:
        """Called when the blob tasks are created: ``blobs`` maps digest → (size, images)."""
        with self.lock:
            self.output = output
            self.images += [image for image in images if image not in self.images]
            for digest, (size, users) in blobs.items():
                self.blobs.setdefault(digest, _Blob(size, list(users)))

    def fetching(self, digest: str) -> None:
        with self.lock:
            blob = self.blobs.setdefault(digest, _Blob(None, []))
            blob.state, blob.done = "fetching", 0

    def advance(self, digest: str, count: int) -> None:
        """``count`` more bytes of ``digest`` arrived."""
        with self.lock:
            self.blobs[digest].done += count

    def finished(self, digest: str, fetched: bool) -> None:
        """The blob is in the cache: fetched now, or found there already (reused)."""
        with self.lock:
            blob = self.blobs.setdefault(digest, _Blob(None, []))
            blob.state = "fetched" if fetched else "reused"
            if blob.size is None or fetched:
                blob.size = blob.size or blob.done

    def snapshot(self) -> dict[str, Any]:
        """Totals for display: bytes done and planned, blob counts by state, active blobs."""
        with self.lock:
            blobs = list(self.blobs.items())
        planned = sum(b.size or 0 for _, b in blobs if b.state != "reused")
        return {
            "done": sum(b.done for _, b in blobs),
            "total": planned,
            "fetched": [(d, b) for d, b in blobs if b.state == "fetched"],
            "reused": [(d, b) for d, b in blobs if b.state == "reused"],
            "active": [(d, b) for d, b in blobs if b.state == "fetching"],
            "count": len(blobs),
        }


#: The process-wide tracker the tasks report to (one doit run per process).
TRACKER = Tracker()


def _mib(count: float) -> str:
    """A byte count for people: ``512 B``, ``3.2 KiB``, ``16.0 MiB``, ``1.5 GiB``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} B"


def summary(tracker: Tracker) -> str:
    """The closing lines: what was frozen, fetched and reused, and how to load it."""
    snap = tracker.snapshot()
    elapsed = max(time.monotonic() - tracker.started, 1e-6)
    fetched = sum(b.size or b.done for _, b in snap["fetched"])
    text = (
        f"frozen: {len(tracker.images)} images, {len(snap['fetched'])} blobs fetched "
        f"({_mib(fetched)}, {_mib(fetched / elapsed)}/s), {len(snap['reused'])} reused "
        f"from the cache, in {elapsed:.1f} s"
    )
    if tracker.output is not None and tracker.load_hint:
        text += (
            f"\n  output: {tracker.output}\n  load it: tar -cC '{tracker.output}' . | docker load"
        )
    return text + "\n"


class FrozenReporter(ConsoleReporter):
    """doit's console reporter, plus live progress on a terminal and a summary at the end."""

    desc = "console output with download progress and a summary (frozen-tasks)"

    def __init__(self, outstream: TextIO, options: dict[str, Any]) -> None:
        super().__init__(outstream, options)
        self.tracker = TRACKER
        self.tracker.started = time.monotonic()
        self.live = None
        self._logged: set[str] = set()
        err = sys.__stderr__
        if err is not None and err.isatty():
            self._start_live(err)

    # -- terminal: rich live display -------------------------------------------------------

    def _start_live(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream)
        self.live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()

    def _render(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        if not self.tracker.images:
            return Text("resolving image references...", style="bold")
        snap = self.tracker.snapshot()
        elapsed = max(time.monotonic() - self.tracker.started, 1e-6)
        rate = snap["done"] / elapsed
        remaining = max(snap["total"] - snap["done"], 0)
        eta = f"ETA {remaining / rate:.0f} s" if rate > 0 and remaining else ""
        done_blobs = len(snap["fetched"]) + len(snap["reused"])
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, overflow="ellipsis", max_width=44)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, overflow="ellipsis")
        table.add_row(
            Text(
                f"{len(self.tracker.images)} images, blobs {done_blobs}/{snap['count']} "
                f"({len(snap['reused'])} cached)",
                style="bold",
            ),
            ProgressBar(total=max(snap["total"], 1), completed=snap["done"], width=20),
            Text(f"{_mib(snap['done'])}/{_mib(snap['total'])} {_mib(rate)}/s {eta}"),
        )
        for digest, blob in snap["active"][:8]:
            name = blob.images[0] if blob.images else ""
            table.add_row(
                Text(f"  {digest[7:19]} {name}"),
                ProgressBar(total=max(blob.size or blob.done, 1), completed=blob.done, width=20),
                Text(f"{_mib(blob.done)}/{_mib(blob.size or 0)}"),
            )
        return table

    def write(self, text: str) -> None:
        if self.live is not None and self.outstream in (sys.stdout, sys.__stdout__):
            self.live.console.print(text, end="", markup=False, highlight=False)
        else:
            super().write(text)

    # -- doit events -------------------------------------------------------------------------

    def execute_task(self, task: Any) -> None:
        if self.live is not None and _blob_digest(task):
            return  # on a terminal, a blob being fetched has its own bar
        super().execute_task(task)

    def skip_uptodate(self, task: Any) -> None:
        digest = _blob_digest(task)
        if digest:
            self.tracker.finished(digest, fetched=False)
            if self.live is not None:
                return  # a cached blob shows in the counts, not as a line of its own
        super().skip_uptodate(task)

    def add_success(self, task: Any) -> None:
        digest = _blob_digest(task)
        if digest and self.live is None and digest not in self._logged:
            self._logged.add(digest)
            blob = self.tracker.blobs.get(digest)
            if blob is not None and blob.state == "fetched":
                names = ", ".join(blob.images[:2])
                self.write(f"   fetched {digest[7:19]} {_mib(blob.size or blob.done)} ({names})\n")
        super().add_success(task)

    def complete_run(self) -> None:
        if self.live is not None:
            self.live.stop()
        if not self.failures and not self.runtime_errors and self.tracker.images:
            self.write(summary(self.tracker))
        super().complete_run()


def _blob_digest(task: Any) -> str | None:
    """``sha256:<hex>`` for a ``<basename>:blob/<hex>`` task, else None."""
    _, _, name = task.name.partition(":blob/")
    return f"sha256:{name}" if name else None
