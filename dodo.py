# `doit frozen` pulls every image listed in images.json into ./frozen (see README).
from frozen_tasks import DOIT_CONFIG, task_frozen, task_frozen_resolve  # noqa: F401
