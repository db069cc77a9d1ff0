"""Helpers for the external processes the fixtures start and the commands they run."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

SKOPEO = "/usr/bin/skopeo"


class CommandError(subprocess.CalledProcessError):
    """A failed command whose message carries its stdout and stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


def run(
    cmd: Sequence[str | Path],
    *,
    input: bytes | str | None = None,
    stdin: IO[bytes] | None = None,
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run cmd and return it with decoded stdout/stderr; raise CommandError if check fails."""
    data = input.encode() if isinstance(input, str) else input
    args = [str(c) for c in cmd]
    proc = subprocess.run(
        args, input=data, stdin=stdin, capture_output=True, timeout=timeout, check=False
    )
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if check and proc.returncode:
        raise CommandError(proc.returncode, args, out, err)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run /usr/bin/skopeo with args."""
    return run([SKOPEO, *args], check=check)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Terminate proc by PID, wait for it, and kill it if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_service(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log_path: Path,
    what: str,
    timeout: float = 30,
) -> None:
    """Poll ready() until it is true; otherwise stop proc and raise with its log."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError(
        f"{what} did not come up (exit code {proc.returncode}); log {log_path}:\n"
        + log_path.read_text(errors="replace")
    )
