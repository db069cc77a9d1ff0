"""Run frozen-tasks the way users do: `doit frozen` in a project dir, or `frozen-download`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


class Project:
    """A directory holding the repository's dodo.py and an images.json, with its own cache
    (FROZEN_CACHE) and an empty docker config (DOCKER_CONFIG) unless a test writes one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "cache"
        self.docker_config = root / "docker-config"
        self.docker_config.mkdir(parents=True, exist_ok=True)
        self.extra_env: dict[str, str] = {}  # e.g. FROZEN_ATTEMPTS for a fault test
        shutil.copy(REPO / "dodo.py", root / "dodo.py")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "FROZEN_CACHE": str(self.cache),
                "DOCKER_CONFIG": str(self.docker_config), **self.extra_env}

    @property
    def output(self) -> Path:
        return self.root / json.loads((self.root / "images.json").read_text()).get(
            "output", "frozen")

    def write_images(self, images: list[Any], **top: Any) -> Path:
        path = self.root / "images.json"
        path.write_text(json.dumps({"images": images, **top}, indent=2))
        return path

    def login(self, registry: str, user: str, password: str) -> None:
        """Write credentials as `docker login` stores them (auths.<host>.auth)."""
        import base64

        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        (self.docker_config / "config.json").write_text(
            json.dumps({"auths": {registry: {"auth": auth}}}))

    def doit(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `doit ARGS` in the project dir; with check, fail showing its output."""
        return self._run("doit", ["-m", "doit", *args], check)

    def download(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the seed-compatible `frozen-download ARGS`."""
        return self._run("frozen-download", ["-m", "frozen_tasks.cli", *args], check)

    def _run(self, name: str, argv: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, *argv], cwd=self.root, env=self.env,
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"{name} {' '.join(argv[2:])} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


def executed(result: subprocess.CompletedProcess[str], prefix: str = "") -> list[str]:
    """Tasks doit ran (lines '.  name'), not the up-to-date ones ('-- name')."""
    return [line[3:] for line in result.stdout.splitlines()
            if line.startswith(".  ") and line[3:].startswith(prefix)]


def blob_gets(log: list[str]) -> list[str]:
    """Blob downloads in a registry request log."""
    return [line for line in log if line.startswith("GET ") and "/blobs/sha256:" in line]
