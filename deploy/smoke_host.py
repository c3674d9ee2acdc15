"""The Docker host of ``smoke.py``: packages, the engine, stand-in images and ``docker compose``.

Everything here runs commands with a time limit and raises :class:`SmokeError` with the command's
last output when one fails. :class:`Engine` stops a ``dockerd`` only if it started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
#: CI places ``shared/`` beside the repository.
STANDIN_IMAGES = ROOT.parent / "shared" / "tools" / "standin-images"
#: Every service of docker-compose.yml but grafana, whose image no Debian package provides.
SERVICES = ("postgres", "redis", "migrate", "api-1", "api-2", "worker", "proxy", "prometheus")
PROJECT = "orderhub"  # the compose file's `name:`


class SmokeError(RuntimeError):
    """A step failed; the message says what was expected and what came instead."""


def say(text: str) -> None:
    """Progress on stderr; the report goes to stdout."""
    sys.stderr.write(f"[smoke] {text}\n")
    sys.stderr.flush()


def run(
    args: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` to completion within ``timeout`` seconds (the child is killed after that)."""
    try:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SmokeError(f"`{' '.join(args)}` did not finish within {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise SmokeError(f"`{' '.join(args)}` exited {result.returncode}:\n{tail}")
    return result


def ensure_packages() -> list[str]:
    """Install Debian's docker.io and mmdebstrap when their commands are missing; what was installed."""
    missing = [pkg for pkg, cmd in (("docker.io", "dockerd"), ("mmdebstrap", "mmdebstrap")) if not shutil.which(cmd)]
    if missing:
        say(f"installing {', '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], timeout=300, env=env)
        run(["apt-get", "install", "-y", "-qq", *missing], timeout=600, env=env)
    return missing


class Engine:
    """A running Docker engine: the one already there, or a ``dockerd`` this run starts and stops."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: subprocess.Popen[bytes] | None = None

    @staticmethod
    def answers() -> bool:
        """Whether ``docker info`` reaches an engine."""
        return run(["docker", "info"], timeout=30, check=False).returncode == 0

    def ensure(self, within: float = 60) -> str:
        """Start ``dockerd`` unless an engine answers; wait until it does. Which of the two it was."""
        if self.answers():
            return "running"
        say("no Docker engine answers: starting dockerd")
        log = (self.log_dir / "dockerd.log").open("wb")
        self.started = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + within
        while not self.answers():
            if self.started.poll() is not None or time.monotonic() > deadline:
                raise SmokeError(f"dockerd did not come up within {within:.0f} s (log: {log.name})")
            time.sleep(1)
        return "started dockerd"

    def stop(self) -> None:
        """Stop the ``dockerd`` this run started, if any (SIGTERM, then SIGKILL after 30 s)."""
        if self.started is None or self.started.poll() is not None:
            return
        say("stopping the dockerd this run started")
        self.started.terminate()
        try:
            self.started.wait(30)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait(10)


def standin_images(script: Path = STANDIN_IMAGES) -> str:
    """Build the local stand-ins of the official images and install Compose v2 (no registry here)."""
    if not script.exists():
        raise SmokeError(f"{script} is missing (--standin PATH, or --no-standin on a host that can pull images)")
    run([str(script), "--plugins"], timeout=1200)
    return f"{script.name} --plugins"


class Compose:
    """``docker compose`` in deploy/, always with the same variables (a change would recreate services)."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1", **variables}

    def but(self, **variables: str) -> Compose:
        """The same project with some variables changed (a new ``ORDERHUB_TAG`` to roll to)."""
        return Compose({**self.env, **variables})

    def __call__(self, *args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``docker compose ARGS`` in deploy/."""
        return run(["docker", "compose", *args], timeout=timeout, env=self.env, cwd=DEPLOY, check=check)

    def containers(self, service: str | None = None, *, running_only: bool = True) -> list[str]:
        """Ids of the project's containers (of one service), running ones only by default."""
        filters = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        flags = ["-q"] if running_only else ["-aq"]
        return run(["docker", "ps", *flags, *filters], timeout=30).stdout.split()

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of the project that still exist."""
        label = f"label=com.docker.compose.project={PROJECT}"
        found = [f"container {c}" for c in self.containers(running_only=False)]
        for kind in ("volume", "network"):
            names = run(["docker", kind, "ls", "-q", "--filter", label], timeout=30).stdout.split()
            found += [f"{kind} {name}" for name in names]
        return found

    def logs_tail(self, service: str, lines: int = 20) -> str:
        """The last lines of a service's logs, for a failure message."""
        result = self("logs", "--no-color", "--tail", str(lines), service, timeout=60, check=False)
        return result.stdout.strip()
