"""The processes and servers of ``deploy/scale_out.py``: hub processes it starts and stops, and the
Postgres and Redis it runs on (configured ones, else embedded ones in the run's folder)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import psutil

LOOPBACK = "127.0.0.1"


class ScaleOutError(RuntimeError):
    """The run could not complete; the message says where and what to look at."""


def say(text: str) -> None:
    """Progress on stderr (stdout carries only the figures)."""
    sys.stderr.write(f"[scale-out] {text}\n")
    sys.stderr.flush()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if this script dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Fleet:
    """Hub processes started by this script; :meth:`stop_all` ends every one of them."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    def hub(self, *args: str, timeout: float = 120) -> str:
        """Run one ``hub`` command to completion; its stdout, or :class:`ScaleOutError`."""
        result = subprocess.run(
            [sys.executable, "-m", "hub", *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ScaleOutError(f"hub {' '.join(args)} failed: {result.stderr.decode(errors='replace')[-1500:]}")
        return result.stdout.decode()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``hub *args`` in the background, its output in ``<run_dir>/<name>.log``."""
        log = (self.run_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches this script, which then stops children in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        self.procs[name] = proc
        self._logs[name] = log
        return proc

    def check_alive(self, names: Sequence[str]) -> None:
        """:class:`ScaleOutError` with the log's tail if one of ``names`` has exited."""
        for name in names:
            code = self.procs[name].poll()
            if code is not None:
                raise ScaleOutError(f"{name} exited with {code}:\n{self.tail(name)}")

    def tail(self, name: str, size: int = 1500) -> str:
        """The end of a process's log."""
        path = self.run_dir / f"{name}.log"
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""

    def stop(self, names: Sequence[str], *, grace: float = 35) -> None:
        """SIGTERM ``names`` together, wait up to ``grace`` seconds, then SIGKILL what is left."""
        for name in names:
            with contextlib.suppress(ProcessLookupError):
                self.procs[name].send_signal(signal.SIGTERM)
                self.procs[name].send_signal(signal.SIGCONT)  # a paused process acts on SIGTERM only once resumed
        deadline = time.monotonic() + grace
        for name in names:
            proc = self.procs.pop(name)
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            self._logs.pop(name).close()

    def pause(self, names: Sequence[str], *, resume: bool = False) -> None:
        """SIGSTOP (or with ``resume``, SIGCONT) ``names``: started and warm, but not running."""
        for name in names:
            self.procs[name].send_signal(signal.SIGCONT if resume else signal.SIGSTOP)

    def stop_all(self) -> None:
        """Workers first (they drain from the APIs' queue), then the APIs."""
        names = sorted(self.procs, key=lambda n: (not n.startswith("worker"), n))
        self.stop(names)

    def cpu_seconds(self, prefix: str) -> float:
        """CPU time (user + system) used so far by the processes whose name starts with ``prefix``."""
        total = 0.0
        for name, proc in self.procs.items():
            if name.startswith(prefix):
                with contextlib.suppress(psutil.Error):
                    times = psutil.Process(proc.pid).cpu_times()
                    total += times.user + times.system
        return total


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def stores(run_dir: Path) -> Iterator[tuple[str, str]]:
    """``HUB_DATABASE_URL`` and ``HUB_REDIS_URL`` from the environment, else embedded servers."""
    database_url = os.environ.get("HUB_DATABASE_URL")
    redis_url = os.environ.get("HUB_REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url
        return
    from hub.embedded import EmbeddedServers

    servers = EmbeddedServers(run_dir / "embedded")
    say("starting embedded Postgres and Redis (set HUB_DATABASE_URL and HUB_REDIS_URL to use yours)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver's platformdirs warns about XDG_RUNTIME_DIR
            urls = servers.start()
        yield urls.database_url, urls.redis_url
    finally:
        servers.stop()
