"""``frozen-download DIR image[:tag][@digest] ...``: the seed script's command line, run as the
same doit graph through doit's API. Its doit state lives in the cache, never inside DIR."""

from __future__ import annotations

import sys

from doit.cmd_base import ModuleTaskLoader
from doit.doit_cmd import DoitMain

from . import DOIT_CONFIG
from .errors import SpecError
from .progress import TRACKER
from .spec import config_from_refs
from .tasks import frozen_task_creators

USAGE = """\
usage: frozen-download dir image[:tag][@digest] ...
       frozen-download /tmp/frozen busybox:latest hello-world:latest@sha256:<64 hex>

Pulls each image (without a Docker daemon) into dir, in the format 'docker load' reads
(manifest.json, repositories, legacy layer directories) plus an OCI image layout.
Re-running with the same arguments fetches nothing that is already there.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``frozen-download``; returns the process exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if len(args) < 2:
        print(USAGE, end="", file=sys.stderr)
        return 1
    directory, refs = args[0], args[1:]
    try:
        config = config_from_refs(directory, refs)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config.state_dir.mkdir(parents=True, exist_ok=True)
    namespace = {
        **frozen_task_creators(config),
        "DOIT_CONFIG": {**DOIT_CONFIG, "dep_file": str(config.state_dir / "doit.db")},
    }
    TRACKER.load_hint = False
    code = DoitMain(ModuleTaskLoader(namespace)).run(["frozen"])
    if code == 0:
        print(f"Download of images into '{directory}' complete.")
        print("Use something like the following to load the result into a Docker daemon:")
        print(f"  tar -cC '{directory}' . | docker load")
    return code


if __name__ == "__main__":
    sys.exit(main())
