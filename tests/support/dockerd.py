"""A private dockerd (vfs storage, no networking) to load and run pulled images."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .process import CommandError, run, stop_process, wait_for_service

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"


class DockerDaemon:
    """A running dockerd with its own socket, data root and exec root under `base`."""

    def __init__(self, base: Path, process: subprocess.Popen[bytes], log_path: Path):
        self.base = base
        self.process = process
        self.log_path = log_path
        self.host = f"unix://{base}/docker.sock"

    @property
    def pid(self) -> int:
        return self.process.pid

    def docker(
        self, *args: str | Path, input: bytes | str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run /usr/bin/docker against this daemon."""
        return run([DOCKER, "-H", self.host, *args], input=input, check=check)

    def load_dir(self, path: Path) -> str:
        """`tar -cC path . | docker load`; returns docker load's output."""
        with subprocess.Popen(["tar", "-cC", str(path), "."], stdout=subprocess.PIPE) as tar:
            loaded = run([DOCKER, "-H", self.host, "load"], stdin=tar.stdout)
        if tar.returncode:
            raise CommandError(tar.returncode, tar.args)
        return loaded.stdout

    def load_tar(self, path: Path) -> str:
        """`docker load -i path`; returns its output."""
        return self.docker("load", "-i", path).stdout

    def run(self, image: str, *args: str) -> str:
        """`docker run --rm --network none image args...`; returns its stdout."""
        return self.docker("run", "--rm", "--network", "none", image, *args).stdout

    def clean(self) -> None:
        """Remove all containers and images, so the next load reads every layer."""
        containers = self.docker("ps", "-aq").stdout.split()
        if containers:
            self.docker("rm", "-f", *containers)
        images = list(dict.fromkeys(self.docker("images", "-aq").stdout.split()))
        if images:
            self.docker("rmi", "-f", *images)

    def stop(self) -> None:
        """Stop dockerd by PID and delete its directories."""
        stop_process(self.process, timeout=30)
        shutil.rmtree(self.base)


def _docker_info(host: str) -> bool:
    return run([DOCKER, "-H", host, "info"], check=False, timeout=30).returncode == 0


def start_dockerd() -> DockerDaemon:
    """Start dockerd (as root) under a short /tmp path, since socket paths are length-limited."""
    base = Path(tempfile.mkdtemp(prefix="fz-dockerd-", dir="/tmp"))
    log_path = base / "dockerd.log"
    (base / "daemon.json").write_text("{}")  # ignore any /etc/docker/daemon.json
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                DOCKERD,
                "--config-file", str(base / "daemon.json"),
                "--storage-driver", "vfs",
                "--iptables=false",
                "--bridge=none",
                "-H", f"unix://{base}/docker.sock",
                "--data-root", str(base / "data"),
                "--exec-root", str(base / "exec"),
                "--pidfile", str(base / "docker.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    daemon = DockerDaemon(base, proc, log_path)
    try:
        wait_for_service(lambda: _docker_info(daemon.host), proc, log_path, "dockerd", timeout=60)
    except RuntimeError:
        shutil.rmtree(base)
        raise
    return daemon
