"""Run one command and measure it: wall time, peak RSS of its whole process tree (sampled from
/proc every 20 ms), its own ru_maxrss (exact, from wait4), and the registry requests it caused."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workloads import Registry, Request

SAMPLE_INTERVAL = 0.02


@dataclass
class Result:
    cmd: list[str]
    wall: float
    returncode: int
    peak_tree_rss: int  # bytes, sum over the process and its descendants, sampled
    maxrss: int  # bytes, the top process alone: its VmHWM, last seen by the sampler
    cpu: float = 0.0  # user + system seconds of the process and the children it waited for
    registry_cpu: float = 0.0  # seconds the registry process spent meanwhile
    other_cpu: float = 0.0  # CPU seconds used by anything else on the machine meanwhile
    requests: list[Request] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""

    @property
    def blob_gets(self) -> list[Request]:
        return [r for r in self.requests if r.is_blob_get]

    @property
    def blob_bytes(self) -> int:
        return sum(r.size for r in self.blob_gets)

    def summary(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall, 4),
            "peak_tree_rss_mib": round(self.peak_tree_rss / (1 << 20), 1),
            "maxrss_mib": round(self.maxrss / (1 << 20), 1),
            "cpu_s": round(self.cpu, 4),
            "registry_cpu_s": round(self.registry_cpu, 3),
            "other_cpu_s": round(self.other_cpu, 3),
            "requests": len(self.requests),
            "blob_gets": len(self.blob_gets),
            "blob_bytes": self.blob_bytes,
        }


def _status_kib(pid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


_HZ = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks() -> int:
    """CPU ticks spent not idle, all CPUs, since boot."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]) - fields[3] - fields[4]  # minus idle and iowait (no guest: in user)


def process_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in ticks."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def _children_map(min_pid: int) -> dict[int, list[int]]:
    """ppid -> pids, from /proc/<pid>/stat (this kernel has no /proc/.../children). Only pids
    from min_pid up: descendants were created after the root (pids wrapping around is not
    handled), and the sampler stays cheap."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) < min_pid:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) over root and all its descendants."""
    kids = _children_map(root)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _status_kib(pid, b"VmRSS:") * 1024
        stack.extend(kids.get(pid, ()))
    return total


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        registry: Registry | None = None, check: bool = True, timeout: float = 900,
        log_dir: Path | None = None) -> Result:
    """Run cmd to completion, measuring it (see the module doc)."""
    os.sync()  # no dirty pages left by the previous run, written back during this one
    offset = registry.log_offset() if registry else 0
    reg_pid = registry.process.pid if registry else None
    busy0, reg0 = machine_busy_ticks(), process_ticks(reg_pid) if reg_pid else 0
    out_path = (log_dir or Path("/tmp")) / f".bench-{os.getpid()}-{time.monotonic_ns()}"
    peak = hwm = 0
    done = threading.Event()
    with open(f"{out_path}.out", "wb+") as out, open(f"{out_path}.err", "wb+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)

        def sample() -> None:
            nonlocal peak, hwm
            want = "\0".join(map(str, cmd)).encode()
            while not done.is_set():  # until exec, the child is a (v)fork of this process
                try:
                    with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                        if f.read().rstrip(b"\0") == want:
                            break
                except OSError:
                    break
                done.wait(0.001)
            while not done.is_set():
                peak = max(peak, tree_rss(proc.pid))
                # Not ru_maxrss: after fork/vfork + exec it also holds this process's peak.
                hwm = max(hwm, _status_kib(proc.pid, b"VmHWM:") * 1024)
                done.wait(SAMPLE_INTERVAL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        busy1, reg1 = machine_busy_ticks(), process_ticks(reg_pid) if reg_pid else 0
        timer.cancel()
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    os.unlink(f"{out_path}.out")
    os.unlink(f"{out_path}.err")
    requests = registry.requests_since(offset) if registry else []
    cpu = usage.ru_utime + usage.ru_stime
    registry_cpu = (reg1 - reg0) / _HZ
    other = max(0.0, (busy1 - busy0) / _HZ - cpu - registry_cpu)
    result = Result(list(cmd), wall, proc.returncode, peak, hwm, cpu, registry_cpu, other,
                    requests, stdout, stderr)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stdout[-3000:]}\n"
                           f"{stderr[-3000:]}")
    return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def median_result(results: list[Result]) -> dict[str, Any]:
    """Median of each field over repeated runs (the runs themselves are kept as `runs`)."""
    summaries = [r.summary() for r in results]
    keys = summaries[0].keys()
    merged: dict[str, Any] = {k: median([s[k] for s in summaries]) for k in keys}
    merged["runs"] = summaries
    return merged
