"""Benchmark `doit frozen` against skopeo and the physical limit, on a local docker-registry.

    python benchmarks/run.py [--quick] [--json out.json] [--no-profile] [--keep]

See benchmarks/README.md for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import measure  # noqa: E402
import plot  # noqa: E402
import workloads as wl  # noqa: E402
from measure import Result, median_result  # noqa: E402

MiB = 1 << 20
SKOPEO = "/usr/bin/skopeo"

TARGETS = {
    "cold_w1_vs_limit": 2.0,  # ours / limit
    "cold_w1_vs_skopeo": 0.5,  # ours / skopeo
    "cold_w3_throughput_vs_limit": 0.8,  # (limit time / ours time)
    "noop_seconds": 0.3,
    "noop_requests": 0,
    "peak_rss_w3_mib": 80,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def size(n: float) -> str:
    return f"{n / MiB:.1f}MiB" if n >= MiB else f"{n / 1024:.1f}KiB"


def wait_quiet(limit: float) -> None:
    """Wait (at most `limit` seconds) until other processes leave the machine mostly idle."""
    deadline = time.monotonic() + limit
    busy = cpu_busy(0.5)
    if busy > 0.15 and limit > 0:
        log(f"  machine {busy:.0%} busy; waiting up to {limit:.0f} s for it to calm down")
    while busy > 0.15 and time.monotonic() < deadline:
        busy = cpu_busy(1.0)


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of the machine's CPU time in use (by anything) over `seconds`."""

    def snap() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    total0, idle0 = snap()
    time.sleep(seconds)
    total1, idle1 = snap()
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


# -- the project under test ------------------------------------------------------------------


class Bench:
    """Shared state: scratch dir, snapshot of the library, registry, workloads."""

    def __init__(self, root: Path, registry: wl.Registry, works: dict[str, wl.Workload],
                 hasher: str) -> None:
        self.root = root
        self.registry = registry
        self.works = works
        self.hasher = hasher
        self.src = root / "src"
        self.docker_config = root / "docker-config"
        self.docker_config.mkdir(exist_ok=True)
        self.counter = 0
        self.noop_runs = 3

    def new_dir(self, prefix: str) -> Path:
        self.counter += 1
        path = self.root / "runs" / f"{self.counter:03d}-{prefix}"
        path.mkdir(parents=True)
        return path

    def env(self, project: Path, cache: Path | None = None) -> dict[str, str]:
        env = {**os.environ, "FROZEN_CACHE": str(cache or project / "cache"),
               "DOCKER_CONFIG": str(self.docker_config), "PYTHONPATH": str(self.src)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have .pyc files
        return env

    def project(self, prefix: str, refs: list[str]) -> Path:
        """A project dir: the repository's dodo.py, an images.json, its own cache."""
        project = self.new_dir(prefix)
        shutil.copy(self.src / "dodo.py", project / "dodo.py")
        self.write_images(project, refs)
        return project

    def write_images(self, project: Path, refs: list[str]) -> None:
        (project / "images.json").write_text(json.dumps(
            {"output": "frozen", "platform": "linux/amd64", "images": refs}, indent=2))

    def doit(self, project: Path, *args: str, check: bool = True,
             cache: Path | None = None) -> Result:
        return measure.run([sys.executable, "-m", "doit", *args], cwd=project,
                           env=self.env(project, cache), registry=self.registry, check=check,
                           log_dir=self.root)

    def refs(self, work: wl.Workload, pinned: bool = True) -> list[str]:
        return [image.ref(self.registry.host, pinned=pinned) for image in work.images]


def check_output(project: Path, images: list[wl.Image]) -> None:
    """The output lists every image with its layers, and every file is there."""
    out = project / "frozen"
    manifest = json.loads((out / "manifest.json").read_text())
    want = {tuple(f"blobs/sha256/{x.digest[7:]}" for x in image.layers) for image in images}
    got = {tuple(entry["Layers"]) for entry in manifest}
    if want != got:
        raise RuntimeError(f"{out}/manifest.json does not list the expected layers")
    for entry in manifest:
        for rel in [entry["Config"], *entry["Layers"]]:
            if not (out / rel).is_file():
                raise RuntimeError(f"{out}/{rel} missing")


def executed_tasks(result: Result) -> list[str]:
    """Tasks doit ran ('.  name'), not the up-to-date ones ('-- name')."""
    return [line[3:] for line in result.stdout.splitlines() if line.startswith(".  ")]


# -- peers ---------------------------------------------------------------------------------


def skopeo_all(bench: Bench, work: wl.Workload) -> Result:
    """`skopeo copy docker://…@digest docker-archive:x.tar:name:tag`, one image after the other."""
    out = bench.new_dir(f"skopeo-{work.name}")
    lines = ["set -e"]
    for i, image in enumerate(work.images):
        src = f"docker://{bench.registry.host}/{image.repo}@{image.digest}"
        dst = f"docker-archive:{out}/{i}.tar:{image.repo}:{image.tag}"
        lines.append(f"{SKOPEO} copy --quiet --src-tls-verify=false '{src}' '{dst}'")
    result = measure.run(["sh", "-c", "\n".join(lines)], registry=bench.registry,
                         log_dir=bench.root)
    shutil.rmtree(out)
    return result


def limit(bench: Bench, work: wl.Workload) -> Result:
    """The unique blobs with curl, 4 at a time, each to a file then hashed."""
    out = bench.new_dir(f"limit-{work.name}")
    blobs = work.unique_blobs()
    listing = out / "blobs.txt"
    listing.write_text("".join(
        f"{bench.registry.url}/v2/{repo}/blobs/{blob.digest} {out}/{blob.digest[7:]}\n"
        for repo, blob in blobs))
    hash_cmd = "openssl dgst -sha256 -r" if bench.hasher == "openssl" else "sha256sum"
    script = (f"xargs -P 4 -n 2 sh -c 'curl -sSfL -o \"$2\" \"$1\" && {hash_cmd} \"$2\"' _ "
              f"< {listing}")
    result = measure.run(["sh", "-c", script], registry=bench.registry, log_dir=bench.root)
    got = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    want = {blob.digest[7:] for _, blob in blobs}
    if got != want:
        raise RuntimeError(f"limit for {work.name}: hashes differ from the digests")
    shutil.rmtree(out)
    return result


# -- the measurements ------------------------------------------------------------------------


def moved_setup(bench: Bench) -> tuple[wl.Image, wl.Image, list[wl.Blob]]:
    w1 = bench.works["W1"]
    old, new = w1.images[1], w1.extra["v2-moved"]
    have = {b.digest for image in w1.images for b in image.blobs}
    changed = [b for b in new.blobs if b.digest not in have]
    return old, new, changed


def retag(bench: Bench, image: wl.Image) -> None:
    import requests

    wl.put_manifest(requests.Session(), bench.registry.url, image, image.tag)


def run_rep(bench: Bench, rep: int, data: dict[str, Any]) -> None:
    """One repetition of every measurement, appended to data[...] lists."""
    old, new, _ = moved_setup(bench)
    for name, work in bench.works.items():
        log(f"[rep {rep + 1}] {name}: cold (ours)")
        project = bench.project(f"cold-{name}", bench.refs(work))
        cold = bench.doit(project, "frozen")
        check_output(project, work.images)
        if cold.blob_bytes != work.unique_bytes:
            log(f"  note: fetched {cold.blob_bytes} blob bytes, unique blobs are "
                f"{work.unique_bytes}")
        data[name]["cold"].append(cold)
        if name in ("W1", "W3"):
            # Another project on the same (full) shared cache: nothing to download.
            log(f"[rep {rep + 1}] {name}: warm cache (new project, cache already full)")
            other = bench.project(f"warm-{name}", bench.refs(work))
            warm = bench.doit(other, "frozen", cache=project / "cache")
            check_output(other, work.images)
            data[name]["warm_cache"].append(warm)
            shutil.rmtree(other)
        if name in ("W1", "W2"):
            log(f"[rep {rep + 1}] {name}: no-op x{bench.noop_runs}")
            for _ in range(bench.noop_runs):
                noop = bench.doit(project, "frozen")
                ran = executed_tasks(noop)
                if ran:
                    log(f"  note: the no-op run executed {ran}")
                data[name]["noop"].append(noop)
                data[name]["noop_executed"].append(ran)
        if name == "W1":
            # Pinned refs: the user bumps the pin of image 2 to the new digest.
            log(f"[rep {rep + 1}] W1: incremental (pin bumped in images.json)")
            refs = bench.refs(work)
            refs[1] = new.ref(bench.registry.host)
            bench.write_images(project, refs)
            bump = bench.doit(project, "frozen")
            check_output(project, [work.images[0], new, work.images[2]])
            data[name]["incr_pin"].append(bump)
        shutil.rmtree(project)
        log(f"[rep {rep + 1}] {name}: skopeo")
        data[name]["skopeo"].append(skopeo_all(bench, work))
        log(f"[rep {rep + 1}] {name}: limit (curl + {bench.hasher})")
        data[name]["limit"].append(limit(bench, work))

    # Tags + lock: the way a project that lists tags follows a moved tag (README, "The lock
    # file"): `doit frozen_lock` (re-resolve, print what moved), then `doit frozen`.
    log(f"[rep {rep + 1}] W1: incremental (tag moved; doit frozen_lock + doit frozen)")
    w1 = bench.works["W1"]
    retag(bench, old)
    project = bench.project("incr-lock-W1", bench.refs(w1, pinned=False))
    first = bench.doit(project, "frozen")
    check_output(project, w1.images)
    retag(bench, new)
    relock = bench.doit(project, "frozen_lock")
    if "moved" not in relock.stdout:
        log(f"  note: frozen_lock did not report a moved tag:\n{relock.stdout}")
    pull = bench.doit(project, "frozen")
    check_output(project, [w1.images[0], new, w1.images[2]])
    retag(bench, old)
    shutil.rmtree(project)
    data["W1"]["cold_by_tag"].append(first)
    data["W1"]["incr_relock"].append(relock)
    data["W1"]["incr_lock_pull"].append(pull)


# -- report ----------------------------------------------------------------------------------


def summarize(bench: Bench, data: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    _, _, changed = moved_setup(bench)
    changed_bytes = sum(b.size for b in changed)
    for name, work in bench.works.items():
        d = data[name]
        row: dict[str, Any] = {
            "title": work.title,
            "images": len(work.images),
            "unique_blobs": len(work.unique_blobs()),
            "unique_bytes": work.unique_bytes,
        }
        for key in ("cold", "skopeo", "limit", "noop", "incr_pin", "cold_by_tag", "warm_cache"):
            if d[key]:
                row[key] = median_result(d[key])
        ours, sk, lim = (row[k]["wall_s"] for k in ("cold", "skopeo", "limit"))
        row["ours_vs_limit"] = ours / lim
        row["ours_vs_skopeo"] = ours / sk
        row["throughput_mib_s"] = {k: work.unique_bytes / MiB / row[k]["wall_s"]
                                   for k in ("cold", "skopeo", "limit")}
        if d["noop"]:
            row["noop_executed_tasks"] = d["noop_executed"]
        if name == "W1":
            relock, pull = d["incr_relock"], d["incr_lock_pull"]
            both = [measure.Result(["frozen_lock", "+", "frozen"], a.wall + b.wall, 0,
                                   max(a.peak_tree_rss, b.peak_tree_rss),
                                   max(a.maxrss, b.maxrss), cpu=a.cpu + b.cpu,
                                   registry_cpu=a.registry_cpu + b.registry_cpu,
                                   other_cpu=a.other_cpu + b.other_cpu,
                                   requests=a.requests + b.requests)
                    for a, b in zip(relock, pull, strict=True)]
            row["incr_lock"] = median_result(both)
            row["incr_lock"]["frozen_lock"] = median_result(relock)
            row["incr_lock"]["frozen"] = median_result(pull)
            row["incr_requests_first_run"] = {
                label: [f"{r.method} {r.uri} {r.status} {r.size}" for r in runs[0].requests]
                for label, runs in (("frozen_lock", relock), ("frozen", pull),
                                    ("pin_bumped", d["incr_pin"]))
            }
            row["incr_changed_blobs"] = [{"digest": b.digest, "size": b.size} for b in changed]
            row["incr_changed_bytes"] = changed_bytes
        report[name] = row
    return report


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    w1, w2, w3 = report["W1"], report["W2"], report["W3"]
    t = TARGETS
    thr = w3["limit"]["wall_s"] / w3["cold"]["wall_s"]
    rows = [
        ("cold W1 <= 2.0x limit", f"{w1['ours_vs_limit']:.2f}x",
         w1["ours_vs_limit"] <= t["cold_w1_vs_limit"]),
        ("cold W1 <= 0.5x skopeo", f"{w1['ours_vs_skopeo']:.2f}x",
         w1["ours_vs_skopeo"] <= t["cold_w1_vs_skopeo"]),
        ("cold W3 throughput >= 0.8x limit", f"{thr:.2f}x "
         f"({w3['throughput_mib_s']['cold']:.0f} vs {w3['throughput_mib_s']['limit']:.0f} MiB/s)",
         thr >= t["cold_w3_throughput_vs_limit"]),
    ]
    for name, w in (("W1", w1), ("W2", w2)):
        rows.append((f"no-op {name} <= 0.3 s", f"{w['noop']['wall_s']:.3f} s",
                     w["noop"]["wall_s"] <= t["noop_seconds"]))
        rows.append((f"no-op {name} 0 requests", f"{w['noop']['requests']:g}",
                     w["noop"]["requests"] == t["noop_requests"]))
    for key, label in (("incr_lock", "frozen_lock + frozen"), ("incr_pin", "pin bumped")):
        fetched = w1[key]["blob_bytes"]
        rows.append((f"incremental W1 ({label}) bytes = changed",
                     f"{fetched:,.0f} vs {w1['incr_changed_bytes']:,}",
                     fetched == w1["incr_changed_bytes"]))
    rows.append(("peak RSS W3 <= 80 MiB (tree)", f"{w3['cold']['peak_tree_rss_mib']:.1f} MiB",
                 w3["cold"]["peak_tree_rss_mib"] <= t["peak_rss_w3_mib"]))
    return [{"target": a, "value": b, "met": c} for a, b, c in rows]


def table(report: dict[str, Any]) -> str:
    head = ["workload", "ours s", "skopeo s", "limit s", "ours/limit", "ours/skopeo",
            "no-op s", "no-op req", "incr bytes (fetched/changed)", "peak RSS MiB"]
    rows = [head]
    for name, w in report.items():
        noop = w.get("noop")
        incr = "-"
        if "incr_lock" in w:
            incr = (f"{w['incr_lock']['blob_bytes'] / MiB:.2f}/"
                    f"{w['incr_changed_bytes'] / MiB:.2f} MiB")
        rows.append([
            f"{name} {w['images']}img {size(w['unique_bytes'])}",
            f"{w['cold']['wall_s']:.3f}", f"{w['skopeo']['wall_s']:.3f}",
            f"{w['limit']['wall_s']:.3f}", f"{w['ours_vs_limit']:.2f}",
            f"{w['ours_vs_skopeo']:.2f}",
            f"{noop['wall_s']:.3f}" if noop else "-",
            f"{noop['requests']:g}" if noop else "-",
            incr,
            f"{w['cold']['peak_tree_rss_mib']:.1f}",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(report: dict[str, Any]) -> str:
    lines = []
    for name, w in report.items():
        t = w["throughput_mib_s"]
        c = w["cold"]
        lines.append(
            f"{name}: {w['title']}; {w['unique_blobs']} unique blobs. cold: {c['requests']:g} "
            f"requests, {c['blob_bytes'] / MiB:.1f} MiB of blobs, CPU {c['cpu_s']:.2f} s, "
            f"RSS tree {c['peak_tree_rss_mib']:.1f} MiB (doit process {c['maxrss_mib']:.1f}); "
            f"MiB/s ours {t['cold']:.0f}, skopeo {t['skopeo']:.0f}, limit {t['limit']:.0f}; "
            f"CPU s skopeo {w['skopeo']['cpu_s']:.2f}, limit {w['limit']['cpu_s']:.2f}; "
            f"peak RSS skopeo {w['skopeo']['peak_tree_rss_mib']:.1f} MiB; other processes "
            f"used {c['other_cpu_s']:.2f} CPU s during our cold run")
        if "warm_cache" in w:
            wc = w["warm_cache"]
            lines.append(f"  warm cache (new project, shared cache already full): "
                         f"{wc['wall_s']:.3f} s, CPU {wc['cpu_s']:.2f} s, {wc['requests']:g} "
                         f"requests")
        if "incr_lock" in w:
            il, ip = w["incr_lock"], w["incr_pin"]
            lines.append(
                f"  incremental, tag moved (frozen_lock {il['frozen_lock']['wall_s']:.3f} s, "
                f"{il['frozen_lock']['requests']:g} req + frozen {il['frozen']['wall_s']:.3f} s, "
                f"{il['frozen']['requests']:g} req): {il['blob_gets']:g} blob GETs, "
                f"{il['blob_bytes']:,.0f} bytes; pin bumped: {ip['wall_s']:.3f} s, "
                f"{ip['requests']:g} req, {ip['blob_bytes']:,.0f} bytes; changed blobs "
                f"{w['incr_changed_bytes']:,} bytes "
                f"({len(w['incr_changed_blobs'])}: new top layer + new config)")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def hash_rates(root: Path) -> dict[str, float]:
    """MiB/s of sha256 here: Python's hashlib (OpenSSL), `openssl dgst`, coreutils sha256sum."""
    import hashlib
    import random

    data = random.Random(7).randbytes(64 * MiB)
    path = root / "hash-probe"
    path.write_bytes(data)
    rates = {}
    t = time.perf_counter()
    h = hashlib.sha256()
    view = memoryview(data)
    for i in range(0, len(data), MiB):
        h.update(view[i:i + MiB])
    rates["hashlib"] = 64 / (time.perf_counter() - t)
    for name, cmd in (("openssl", ["openssl", "dgst", "-sha256", "-r", str(path)]),
                      ("sha256sum", ["sha256sum", str(path)])):
        if shutil.which(cmd[0]):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            rates[name] = 64 / (time.perf_counter() - t)
    path.unlink()
    return {k: round(v) for k, v in rates.items()}


def environment(bench_root: Path) -> dict[str, Any]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                  timeout=30).stdout.strip()
        except OSError:
            return ""

    import doit
    import requests
    import urllib3

    return {
        "git_head": out("git", "rev-parse", "HEAD"),
        "git_dirty_frozen_tasks": out("git", "status", "--porcelain", "frozen_tasks", "dodo.py"),
        "python": platform.python_version(),
        "doit": ".".join(map(str, doit.__version__)),
        "requests": requests.__version__,
        "urllib3": urllib3.__version__,
        "skopeo": out(SKOPEO, "--version"),
        "curl": out("curl", "--version").splitlines()[0] if shutil.which("curl") else "",
        "registry": out(wl.REGISTRY_BIN, "--version"),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "scratch": str(bench_root),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 run of each measurement, W3 layer 128 MiB instead of 512 MiB")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--runs", type=int, help="repetitions (default 5, 1 with --quick)")
    parser.add_argument("--big-mib", type=int, help="W3 layer size in MiB")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiling part")
    parser.add_argument("--limit-hasher", choices=["openssl", "sha256sum"], default="openssl",
                        help="what hashes the curl downloads in the limit (default openssl: "
                        "coreutils sha256sum has no SHA-NI and is ~10x slower)")
    parser.add_argument("--wait-quiet", type=float, default=30, metavar="SECONDS",
                        help="before each repetition, wait up to this long for the machine to "
                        "be under 15%% busy (default 30)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new /tmp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    big = (args.big_mib or (128 if args.quick else 512)) * MiB
    for tool in (wl.REGISTRY_BIN, SKOPEO):
        if not os.access(tool, os.X_OK):
            log(f"{tool} is missing (apt-get install docker-registry skopeo)")
            return 2
    if not shutil.which("curl"):
        log("curl is missing")
        return 2

    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="frozen-bench-", dir=args.workdir))
    registry = None
    try:
        # What is measured: the working tree's frozen_tasks as of now, copied, so that edits
        # made while the benchmark runs cannot mix two versions into one result.
        shutil.copytree(REPO / "frozen_tasks", root / "src" / "frozen_tasks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "dodo.py", root / "src" / "dodo.py")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "src")],
                       check=True)
        env_info = environment(root)
        log(f"scratch {root}; frozen_tasks from {env_info['git_head'][:12]}"
            f"{' (+ uncommitted changes)' if env_info['git_dirty_frozen_tasks'] else ''}")
        busy_before = cpu_busy()
        env_info["load_before"] = {"loadavg": os.getloadavg(), "cpu_busy": round(busy_before, 2)}
        if busy_before > 0.15:
            log(f"warning: the machine is {busy_before:.0%} busy before we start (other "
                "processes); timings will be noisy")
        log("hash throughput probe")
        env_info["sha256_mib_s"] = hash_rates(root)
        log("building workloads")
        works = wl.build_workloads(big, log=log)
        registry = wl.start_registry(root / "registry")
        log(f"registry at {registry.url}; pushing")
        t = time.monotonic()
        wl.push_workloads(registry.url, works)
        wl.drop_payloads(works)
        log(f"  pushed in {time.monotonic() - t:.1f} s")
        bench = Bench(root, registry, works, args.limit_hasher)
        bench.noop_runs = 1 if args.quick else 3
        keys = ("cold", "noop", "noop_executed", "skopeo", "limit", "incr_pin", "cold_by_tag",
                "incr_relock", "incr_lock_pull", "warm_cache")
        data = {name: {k: [] for k in keys} for name in works}
        for rep in range(runs):
            wait_quiet(args.wait_quiet)
            run_rep(bench, rep, data)
        report = summarize(bench, data)
        every = [r for d in data.values() for k, v in d.items() if k != "noop_executed"
                 for r in v]
        interference = {
            "measured_wall_s": round(sum(r.wall for r in every), 1),
            "other_cpu_s": round(sum(r.other_cpu for r in every), 1),
        }
        interference["other_cores"] = round(
            interference["other_cpu_s"] / max(interference["measured_wall_s"], 1e-9), 2)
        checks = targets(report)
        profile = None
        if not args.no_profile:
            import profiling

            profile = profiling.run_all(bench, log)
        env_info["load_after"] = {"loadavg": os.getloadavg()}
        result = {
            "mode": "quick" if args.quick else "full",
            "runs": runs,
            "big_layer_mib": big // MiB,
            "limit_hasher": args.limit_hasher,
            "environment": env_info,
            "workloads": report,
            "targets": checks,
            "interference": interference,
            "profile": profile,
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        print()
        print(f"frozen-tasks benchmark ({result['mode']}: median of {runs}; W3 layer "
              f"{big // MiB} MiB; limit = curl x4 + {args.limit_hasher}; times in seconds)")
        print()
        print(table(report))
        print()
        print(details(report))
        print()
        print("targets:")
        for c in checks:
            print(f"  [{'met' if c['met'] else 'MISSED'}] {c['target']}: {c['value']}")
        if profile:
            print()
            print(profiling.render(profile))
        print()
        lb = env_info["load_before"]
        print(f"machine: {os.cpu_count()} CPUs; busy {lb['cpu_busy']:.0%} before the run "
              f"(load average {lb['loadavg'][0]:.2f}), load average "
              f"{env_info['load_after']['loadavg'][0]:.2f} after")
        print(f"other processes during the measured runs: {interference['other_cpu_s']} CPU s "
              f"over {interference['measured_wall_s']} s, i.e. {interference['other_cores']} of "
              f"the {os.cpu_count()} cores on average")
        print(f"total {result['elapsed_s']} s")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str))
            plot.write_svg(result, args.json.with_suffix(".svg"))
            print(f"wrote {args.json} and {args.json.with_suffix('.svg')}")
        return 0
    finally:
        if registry:
            registry.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
