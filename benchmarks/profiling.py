"""Where the time goes: the no-op path (start-up, imports, doit) and the W3 download path.

Run after the measurements (never during them). Uses py-spy when it is installed (it samples
every thread; `pip install py-spy`), else cProfile with doit's `-n 0` (main thread only).
"""

from __future__ import annotations

import json
import pstats
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import measure
from measure import median

MiB = 1 << 20
REPEAT = 7

# -- no-op: phases -------------------------------------------------------------------------


def phases(bench: Any, project: Path) -> dict[str, Any]:
    """Python start-up and the whole no-op as processes; the rest in-process (noop_phases.py)."""
    env = bench.env(project)
    whole = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import doit.doit_cmd'": [sys.executable, "-c", "import doit.doit_cmd"],
        "python -c 'import requests'": [sys.executable, "-c", "import requests"],
        "python -m doit frozen (no-op)": [sys.executable, "-m", "doit", "frozen"],
    }
    procs = {label: median([measure.run(cmd, cwd=project, env=env, log_dir=bench.root).wall
                            for _ in range(REPEAT)]) for label, cmd in whole.items()}
    driver = Path(__file__).with_name("noop_phases.py")
    out = bench.root / "noop-phases.json"
    runs = []
    for _ in range(REPEAT):
        measure.run([sys.executable, str(driver), str(out)], cwd=project, env=env,
                    log_dir=bench.root)
        runs.append(json.loads(out.read_text()))
    inproc = {k: median([r["phases_s"][k] for r in runs]) for k in runs[0]["phases_s"]}
    return {
        "heavy_modules_loaded_in": runs[0]["heavy_modules_loaded_in"],
        "process_s": {k: round(v, 4) for k, v in procs.items()},
        "in_process_s": {k: round(v, 4) for k, v in inproc.items()},
        "in_process_total_s": round(median([r["total_s"] for r in runs]), 4),
    }


# -- no-op: -X importtime --------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_times(bench: Any, project: Path) -> dict[str, Any]:
    """Self import time by top-level package, and the costliest single modules."""
    runs = []
    for _ in range(3):
        r = measure.run([sys.executable, "-X", "importtime", "-m", "doit", "frozen"],
                        cwd=project, env=bench.env(project), log_dir=bench.root)
        rows = [(int(m[1]), int(m[2]), len(m[3]) // 2, m[4])
                for m in map(_IMPORT_LINE.match, r.stderr.splitlines()) if m]
        runs.append(rows)
    rows = min(runs, key=lambda rows: sum(r[0] for r in rows))  # least disturbed run
    by_pkg: Counter[str] = Counter()
    for self_us, _, _, name in rows:
        by_pkg[name.split(".")[0]] += self_us
    total = sum(by_pkg.values())
    # Who pulls the heavy packages in: first-level imports of frozen_tasks' modules.
    cumulative = sorted(((cum, name) for _, cum, depth, name in rows if depth <= 2),
                        reverse=True)
    return {
        "total_ms": round(total / 1000, 1),
        "by_package_ms": {k: round(v / 1000, 1) for k, v in by_pkg.most_common(15)},
        "top_cumulative_ms": [{"module": n, "ms": round(c / 1000, 1)} for c, n in cumulative[:15]],
    }


# -- no-op: cProfile ---------------------------------------------------------------------------


def _fmt_func(key: tuple[str, int, str]) -> str:
    file, line, func = key
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{line}({func})" if line else func


def cprofile(bench: Any, project: Path, args: list[str], tag: str, top: int = 18
             ) -> dict[str, Any]:
    out = bench.root / f"{tag}.prof"
    r = measure.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "doit", *args],
                    cwd=project, env=bench.env(project), log_dir=bench.root)
    stats = pstats.Stats(str(out))
    entries = stats.stats  # type: ignore[attr-defined]
    noise = ("<frozen importlib", "{built-in method builtins.exec}", "{method 'acquire'")

    def rows(index: int) -> list[dict[str, Any]]:
        ranked = sorted(entries.items(), key=lambda kv: kv[1][index], reverse=True)
        picked = []
        for key, (_, ncalls, tt, ct, _) in ranked:
            name = _fmt_func(key)
            if any(n in name for n in noise) or name.startswith("<module>"):
                continue
            picked.append({"func": name, "calls": ncalls, "tottime_ms": round(tt * 1000, 1),
                           "cumtime_ms": round(ct * 1000, 1)})
            if len(picked) == top:
                break
        return picked

    def cum_of(pattern: str) -> float:
        return round(max((v[3] for k, v in entries.items() if pattern in _fmt_func(k)),
                         default=0.0) * 1000, 1)

    return {
        "wall_s": round(r.wall, 3),
        "by_cumtime": rows(3),
        "by_tottime": rows(2),
        "key_cumtime_ms": {p: cum_of(p) for p in (
            "doit_cmd.py:", "(_find_and_load)", "loader.py", "dependency.py", "sqlite3",
            "cmd_run", "runner.py", "frozen_tasks/tasks.py", "(load_tasks)", "(run_all)",
            "(_load_task_from_dict)", "(get_status)", "(freeze_tasks)", "(resolve_tasks)",
            "(file_stat)", "(read_lock)", "(load_images)", "(add_plugins)", "(select_task)",
            "(flat_generator)", "RecordCurrent.__call__", "OutputIntact.__call__",
            "(_stat_unchanged)", "(signature)", "manifest.py:")},
    }


# -- W3: sampling profile ------------------------------------------------------------------


_WAITING = ("Condition.wait", "Event.wait", "Thread.join", "Queue.get")


def _pyspy(bench: Any, project: Path, args: list[str], tag: str) -> dict[str, Any] | None:
    """py-spy on every thread, idle samples included, so that waits (for the network, for
    fsync, for a flush) show up; a worker parked in Condition.wait (no task to run) is left
    out. Each entry: the innermost frame, and the nearest frame of frozen_tasks or doit."""
    pyspy = shutil.which("py-spy")
    if not pyspy:
        return None
    raw = bench.root / f"{tag}.pyspy.txt"
    rate = 250
    r = measure.run([pyspy, "record", "--idle", "--threads", "--nonblocking", "-r", str(rate),
                     "-f", "raw", "-o", str(raw), "--", sys.executable, "-m", "doit", *args],
                    cwd=project, env=bench.env(project), check=False, log_dir=bench.root)
    if r.returncode != 0 or not raw.exists():
        return {"error": r.stderr[-500:]}
    where: Counter[str] = Counter()
    incl: defaultdict[str, int] = defaultdict(int)
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")[1:]]  # [0]: thread
        if not frames or frames[-1].startswith(_WAITING):
            continue
        busy += n
        ours = next((f for f in reversed(frames[:-1])
                     if "frozen_tasks/" in f or "doit/" in f), "")
        leaf = frames[-1] if ours != frames[-1] else ""
        where[f"{frames[-1]}" + (f"  <- {ours}" if ours and leaf else "")] += n
        for f in set(frames):
            incl[f] += n
    key = [f for f in incl if any(s in f for s in (
        "fetch_blob (", "BlobWriter.write", "BlobWriter.discard", "BlobWriter.commit",
        "SqliteDB.dump", "readinto", "resolve", "assemble", "write_output", "load_tasks",
        "_find_and_load (", "Store.verify"))]
    return {
        "tool": f"py-spy --idle --threads, {rate} Hz (workers waiting for a task left out)",
        "wall_s": round(r.wall, 3),
        "busy_samples_ms": round(busy * 1000 / rate),
        "top_ms": [{"where": f, "ms": round(n * 1000 / rate)} for f, n in where.most_common(15)],
        "inclusive_ms": sorted(({"func": f, "ms": round(incl[f] * 1000 / rate)} for f in key),
                               key=lambda e: -e["ms"])[:12],
    }


def truncate_probe(bench: Any, size: int) -> dict[str, Any]:
    """ext4 (auto_da_alloc): a file truncated to 0 and then written flushes its data on close.
    BlobWriter.restart() truncates the fresh, empty partial file before every full download."""
    import os
    import time

    data = os.urandom(1 << 20)
    out: dict[str, list[float]] = {"close_s_plain": [], "close_s_after_truncate": []}
    for _ in range(2):
        for truncate in (False, True):
            path = bench.root / "truncate-probe"
            os.sync()
            with open(path, "w+b") as f:
                if truncate:
                    f.seek(0)
                    f.truncate()
                for _ in range(size >> 20):
                    f.write(data)
                f.flush()
                t = time.perf_counter()
            key = "close_s_after_truncate" if truncate else "close_s_plain"
            out[key].append(round(time.perf_counter() - t, 3))
            path.unlink()
    return {"mib": size >> 20, **out}


# -- W3: where throughput goes ---------------------------------------------------------------


def stream_probes(bench: Any, repeat: int = 3) -> list[dict[str, Any]]:
    """Each case `repeat` times, interleaved; the median run is kept."""
    work = bench.works["W3"]
    repo, blob = max(work.unique_blobs(), key=lambda rb: rb[1].size)
    url = f"{bench.registry.url}/v2/{repo}/blobs/{blob.digest}"
    target = bench.root / "probe.blob"
    probe = Path(__file__).with_name("stream_probe.py")
    py_cases = [(1 << 20, "read"), (1 << 20, "hash"), (64 << 10, "write"), (1 << 20, "write"),
                (4 << 20, "write"), (1 << 20, "pipelined"), (4 << 20, "pipelined"),
                (4 << 20, "pieces")]
    curl_cases = [("curl -o /dev/null", ["curl", "-sSf", "-o", "/dev/null", url]),
                  ("curl -o file", ["curl", "-sSf", "-o", str(target), url]),
                  ("curl | openssl dgst (streamed)",
                   ["sh", "-c", f"curl -sSf '{url}' | openssl dgst -sha256 -r"])]
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _ in range(repeat):
        for chunk, mode in py_cases:
            args = [sys.executable, str(probe), url, str(chunk), mode]
            if mode in ("write", "pipelined", "pieces", "readinto"):
                args.append(str(target))
            r = measure.run(args, log_dir=bench.root)
            row = json.loads(r.stdout)
            row["peak_rss_mib"] = round(r.peak_tree_rss / MiB, 1)
            row["cpu_s"] = r.cpu
            if row.get("digest") and row["digest"] != blob.digest:
                row["note"] = "digest mismatch"
            row.pop("digest", None)
            runs[f"{mode}/{chunk}"].append(row)
            target.unlink(missing_ok=True)
        for label, cmd in curl_cases:
            r = measure.run(cmd, log_dir=bench.root)
            runs[label].append({"mode": label, "chunk": None, "bytes": blob.size,
                                "seconds": r.wall, "mib_s": blob.size / r.wall / MiB,
                                "cpu_s": r.cpu, "peak_rss_mib": round(r.peak_tree_rss / MiB, 1)})
            target.unlink(missing_ok=True)
    out = []
    for rows in runs.values():
        rows.sort(key=lambda row: row["seconds"])
        best = dict(rows[len(rows) // 2])
        best["all_mib_s"] = [round(row["mib_s"]) for row in rows]
        out.append(best)
    return out


# -- all -----------------------------------------------------------------------------------


def run_all(bench: Any, log: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    w1, w2, w3 = (bench.works[k] for k in ("W1", "W2", "W3"))

    log("[profile] W1 no-op: phases, -X importtime, cProfile")
    project = bench.project("profile-noop-W1", bench.refs(w1))
    bench.doit(project, "frozen")
    bench.doit(project, "frozen")
    result["noop_phases_W1"] = phases(bench, project)
    result["noop_importtime_W1"] = import_times(bench, project)
    result["noop_cprofile_W1"] = cprofile(bench, project, ["frozen"], "noop-W1")
    shutil.rmtree(project)

    log("[profile] W2 no-op: cProfile, doit backends")
    backends = {}
    for backend in ("sqlite3", "dbm", "json"):
        project = bench.project(f"profile-noop-W2-{backend}", bench.refs(w2))
        bench.doit(project, "--backend", backend, "frozen")
        walls = [bench.doit(project, "--backend", backend, "frozen").wall
                 for _ in range(REPEAT)]
        backends[backend] = round(median(walls), 4)
        if backend == "sqlite3":
            result["noop_cprofile_W2"] = cprofile(bench, project, ["frozen"], "noop-W2")
        shutil.rmtree(project)
    result["noop_backends_W2_s"] = backends

    log("[profile] W3 cold: sampling profile")
    project = bench.project("profile-cold-W3", bench.refs(w3))
    spy = _pyspy(bench, project, ["frozen"], "cold-W3")
    if spy is None:
        spy = cprofile(bench, project, ["-n", "0", "frozen"], "cold-W3")
        spy["tool"] = "cProfile, doit -n 0 (py-spy not installed)"
    result["cold_profile_W3"] = spy
    shutil.rmtree(project)

    log("[profile] W3 cold by doit backend (sqlite3 commits with fsync)")
    by_backend: dict[str, list[float]] = defaultdict(list)
    for _ in range(2):
        for backend in ("sqlite3", "json", "dbm"):
            project = bench.project(f"profile-cold-W3-{backend}", bench.refs(w3))
            by_backend[backend].append(bench.doit(project, "--backend", backend, "frozen").wall)
            shutil.rmtree(project)
    result["cold_W3_by_backend_s"] = {k: round(median(v), 3) for k, v in by_backend.items()}
    result["cold_W3_by_backend_runs_s"] = {k: [round(x, 3) for x in v]
                                           for k, v in by_backend.items()}
    result["truncate_close_W3"] = truncate_probe(bench, w3.unique_bytes)

    log("[profile] W3 cold with -n 1 (one download thread) vs the default (4)")
    for n in ("1", "4"):
        project = bench.project(f"profile-cold-W3-n{n}", bench.refs(w3))
        r = bench.doit(project, "-n", n, "frozen")
        result[f"cold_W3_n{n}"] = r.summary()
        shutil.rmtree(project)

    log("[profile] W3 blob: stream probes (chunk size, hashing, writing)")
    result["stream_probes_W3"] = stream_probes(bench)
    return result


def render(p: dict[str, Any]) -> str:
    ph = p["noop_phases_W1"]
    lines = [f"profile: no-op W1, phases (median of {REPEAT})"]
    for k, v in ph["process_s"].items():
        lines.append(f"  {k:<44} {v:.3f} s  (process wall)")
    for k, v in ph["in_process_s"].items():
        lines.append(f"    {k:<42} {v:.3f} s")
    lines.append(f"    {'(in-process total)':<42} {ph['in_process_total_s']:.3f} s")
    lines.append("    heavy modules imported, by phase: " + (", ".join(
        f"{k} ({v})" for k, v in ph["heavy_modules_loaded_in"].items()) or "none"))
    it = p["noop_importtime_W1"]
    lines.append(f"profile: no-op W1, -X importtime self time by package (total "
                 f"{it['total_ms']} ms, inflated by the instrumentation)")
    lines.append("  " + ", ".join(f"{k} {v}" for k, v in list(it["by_package_ms"].items())[:12]))
    lines.append("  heaviest imports (cumulative ms): " + ", ".join(
        f"{e['module']} {e['ms']}" for e in it["top_cumulative_ms"][:10]))
    for tag in ("noop_cprofile_W1", "noop_cprofile_W2"):
        cp = p[tag]
        lines.append(f"profile: {tag} (cProfile, inflated: wall {cp['wall_s']} s); cumulative ms "
                     "of: " + ", ".join(f"{k} {v}" for k, v in cp["key_cumtime_ms"].items()
                                       if v))
    lines.append(f"profile: no-op W2 by doit backend (median s): {p['noop_backends_W2_s']}")
    spy = p["cold_profile_W3"]
    lines.append(f"profile: cold W3 ({spy.get('tool')}; wall {spy.get('wall_s')} s, "
                 f"{spy.get('busy_samples_ms')} ms of samples)")
    if "top_ms" in spy:
        for e in spy["top_ms"][:12]:
            lines.append(f"  {e['ms']:>6} ms  {e['where'] or '(no Python frame)'}")
        lines.append("  inclusive: " + "; ".join(
            f"{e['func']} {e['ms']} ms" for e in spy["inclusive_ms"][:8]))
    elif "by_tottime" in spy:
        for e in spy["by_tottime"][:12]:
            lines.append(f"  {e['tottime_ms']:>8} ms self {e['calls']:>6}x  {e['func']}")
    lines.append(f"profile: cold W3 by doit backend (median of 2, s): "
                 f"{p['cold_W3_by_backend_s']} (runs {p['cold_W3_by_backend_runs_s']})")
    tp = p["truncate_close_W3"]
    lines.append(f"profile: close() of a fresh {tp['mib']} MiB file: {tp['close_s_plain']} s; "
                 f"after truncate() to 0 first (BlobWriter.restart): "
                 f"{tp['close_s_after_truncate']} s")
    n1, n4 = p["cold_W3_n1"], p["cold_W3_n4"]
    lines.append(f"profile: cold W3 -n 1: {n1['wall_s']} s (CPU {n1['cpu_s']} s), -n 4: "
                 f"{n4['wall_s']} s (CPU {n4['cpu_s']} s)")
    lines.append("profile: W3 blob stream probes (median of 3; Python ones timed in-process, "
                 "without start-up)")
    for e in p["stream_probes_W3"]:
        chunk = f"{e['chunk'] >> 10} KiB" if e.get("chunk") else ""
        lines.append(f"  {e['mode']:<32} {chunk:>8}  {e['mib_s']:>5.0f} MiB/s "
                     f"(runs {e['all_mib_s']})  {e['seconds']:.3f} s  CPU {e['cpu_s']:.2f} s  "
                     f"RSS {e['peak_rss_mib']} MiB")
    return "\n".join(lines)
