"""Time the phases of an up-to-date `doit frozen`, in one process, in the project directory.

    python noop_phases.py OUT.json

Phases, in order: import doit's command line; import frozen_tasks (and whatever it pulls in:
requests, jq, ...); then what `doit frozen` does once its modules are loaded:
DoitMain().run(["frozen"]) (entry-point plugins, dodo.py, task creation, sqlite, the
up-to-date checks, and any import done lazily on the way). Python's own start-up is not in
here: time `python -c pass` for that. OUT.json also says which heavy modules were imported
by the end, and by which phase.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

HEAVY = ("requests", "urllib3", "charset_normalizer", "idna", "certifi", "jq", "ssl", "http.client",
         "email", "sqlite3", "rich")


def main() -> None:
    marks = {"start": T0}
    loaded: dict[str, str] = {}

    def mark(phase: str) -> None:
        marks[phase] = time.perf_counter()
        for name in HEAVY:
            if name in sys.modules and name not in loaded:
                loaded[name] = phase

    mark("python start-up (site, .pth files)")
    import doit.doit_cmd

    mark("import doit")
    import frozen_tasks  # noqa: F401

    mark("import frozen_tasks")
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    os.dup2(devnull, 1)
    try:
        code = doit.doit_cmd.DoitMain().run(["frozen"])
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
    mark("doit run")
    names = list(marks)
    phases = {names[i]: marks[names[i]] - marks[names[i - 1]] for i in range(2, len(names))}
    with open(sys.argv[1], "w") as f:
        json.dump({"phases_s": phases, "total_s": marks[names[-1]] - T0, "exit": code,
                   "heavy_modules_loaded_in": loaded}, f)


if __name__ == "__main__":
    main()
