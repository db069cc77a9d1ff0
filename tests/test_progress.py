"""Progress: live bars on a terminal (checked under a real pty), lines and a summary in logs."""

from __future__ import annotations

import os
import pty
import random
import select
import subprocess
import sys
from pathlib import Path

from support.frozen import Project
from support.images import make_layer, push_image
from support.proxy import Answer, FaultProxy
from support.registry import Registry


def _run_in_pty(project: Project, *args: str) -> str:
    """Run `doit ARGS` with stdout and stderr on a pseudo-terminal; return what was drawn."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=project.root,
                            env={**project.env, "COLUMNS": "120", "TERM": "xterm"},
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_live_progress_on_a_terminal(registry: Registry, tmp_path: Path) -> None:
    data = random.Random(3).randbytes(3 << 20)
    image = push_image(registry.url, "progress/big", "1", [make_layer({"d": data})])
    slow = FaultProxy(registry.url).start()

    def stall(answer: Answer) -> None:  # slow enough for several refreshes to be drawn
        if answer.path.endswith(image.layer_digests[0]) and answer.method == "GET":
            answer.stall = 1.5

    slow.fault = stall
    try:
        project = Project(tmp_path)
        project.write_images([f"{slow.host}/progress/big:1@{image.manifest_digest}"])
        screen = _run_in_pty(project, "frozen")
    finally:
        slow.stop()
    assert "━" in screen, "a progress bar was drawn"
    assert "1 images" in screen and "blobs" in screen and "ETA" in screen
    assert "MiB/s" in screen
    assert f"{image.layer_digests[0][7:19]}" in screen, "the blob being fetched is named"
    assert "frozen: 1 images, 2 blobs fetched" in screen
    assert "load it: tar -cC" in screen


def test_logs_get_lines_and_a_summary(registry: Registry, tmp_path: Path) -> None:
    image = push_image(registry.url, "progress/small", "1", [make_layer({"s": b"small"})])
    project = Project(tmp_path)
    project.write_images([f"{registry.host}/progress/small:1@{image.manifest_digest}"])
    first = project.doit("frozen").stdout
    assert "\x1b[" not in first, "no escape codes in a log"
    assert f"   fetched {image.layer_digests[0][7:19]}" in first
    assert "frozen: 1 images, 2 blobs fetched" in first
    assert f"load it: tar -cC '{project.output}' . | docker load" in first
    again = project.doit("frozen").stdout
    assert "0 blobs fetched" in again and "2 reused from the cache" in again
