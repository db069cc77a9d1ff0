"""Decompose blob download throughput, the way frozen_tasks streams a blob.

    python stream_probe.py URL CHUNK MODE [OUT]

MODE: ``read`` (requests + urllib3 ``raw.stream(CHUNK)``, bytes dropped), ``hash`` (+ sha256
of each chunk), ``write`` (+ each chunk written to OUT: what RegistryClient.fetch_blob and
BlobWriter do, all in one thread), ``pipelined`` (as ``write``, but sha256 runs in a second
thread fed through a bounded queue: hashlib releases the GIL, so hashing overlaps receiving and
writing), ``pieces`` (as ``pipelined``, each chunk written with 256 KiB write() calls: what
BlobWriter does now), ``readinto`` (urllib3 ``readinto`` a reused buffer + sha256 + write, no
per-chunk allocation). Prints one JSON line.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
import time

t_start = time.perf_counter()
import requests  # noqa: E402 (the import is timed separately)

t_import = time.perf_counter()


def main() -> None:
    url, chunk, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = open(sys.argv[4], "wb") if len(sys.argv) > 4 else None  # noqa: SIM115
    hasher = hashlib.sha256()
    size = 0
    t0 = time.perf_counter()
    with requests.get(url, stream=True, headers={"Accept-Encoding": "identity"},
                      timeout=60) as response:
        response.raise_for_status()
        if mode in ("pipelined", "pieces"):
            piece = 256 << 10 if mode == "pieces" else chunk
            chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)

            def hash_chunks() -> None:
                while (part := chunks.get()) is not None:
                    hasher.update(part)

            worker = threading.Thread(target=hash_chunks)
            worker.start()
            for part in response.raw.stream(chunk, decode_content=False):
                size += len(part)
                chunks.put(part)
                if out:
                    view = memoryview(part)
                    for start in range(0, len(view), piece):
                        out.write(view[start:start + piece])
            chunks.put(None)
            worker.join()
        elif mode == "readinto":
            buf = bytearray(chunk)
            view = memoryview(buf)
            while n := response.raw.readinto(view):
                hasher.update(view[:n])
                if out:
                    out.write(view[:n])
                size += n
        else:
            for part in response.raw.stream(chunk, decode_content=False):
                size += len(part)
                if mode in ("hash", "write"):
                    hasher.update(part)
                if mode == "write" and out:
                    out.write(part)
    if out:
        out.close()
    elapsed = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "chunk": chunk, "bytes": size, "seconds": elapsed,
                      "mib_s": size / elapsed / (1 << 20),
                      "import_s": t_import - t_start,
                      "digest": "sha256:" + hasher.hexdigest() if mode != "read" else None}))


if __name__ == "__main__":
    main()
