"""frozen-tasks: pull container images without a daemon, as doit tasks.

In a dodo.py beside an images.json::

    from frozen_tasks import DOIT_CONFIG, task_frozen, task_frozen_resolve  # noqa: F401

then ``doit frozen`` writes the output directory that ``docker load`` accepts.
"""

from .errors import (
    AuthError,
    DigestMismatchError,
    FrozenError,
    InvalidReferenceError,
    ManifestError,
    RegistryError,
    SpecError,
)
from .progress import FrozenReporter
from .spec import FrozenConfig, ImageSpec, config_from_refs, load_images
from .tasks import frozen_task_creators

#: doit settings for a dodo.py that freezes images: the sqlite3 backend (safe for two runs at
#: once), ``frozen`` as the default task, and blobs fetched four at a time (threads: the work
#: is network and disk, and doit's process mode cannot run delayed task creators). Verbosity 2
#: turns off doit's per-action capture of stdout/stderr, which swaps ``sys.stdout`` without a
#: lock and, under threads, can leave a capture installed; our actions print nothing anyway.
DOIT_CONFIG = {
    "backend": "sqlite3",
    "default_tasks": ["frozen"],
    "num_process": 4,
    "par_type": "thread",
    "verbosity": 2,
    "reporter": FrozenReporter,
}

_creators = frozen_task_creators("images.json")
task_frozen_resolve = _creators["task_frozen_resolve"]
task_frozen = _creators["task_frozen"]

__all__ = [
    "DOIT_CONFIG",
    "AuthError",
    "DigestMismatchError",
    "FrozenConfig",
    "FrozenError",
    "ImageSpec",
    "InvalidReferenceError",
    "ManifestError",
    "RegistryError",
    "SpecError",
    "config_from_refs",
    "frozen_task_creators",
    "load_images",
    "task_frozen",
    "task_frozen_resolve",
]
