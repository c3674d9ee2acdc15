"""The processes a bench run starts, their readiness, their memory, and their certain end.

Every child runs in its own session (a Ctrl-C in the terminal reaches only the runner, which then
stops the children in order) and asks Linux to SIGTERM it if the runner dies, so nothing outlives
the run. Children log to files in the run's work folder; a child that fails to start is reported
with the tail of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson
import psutil

from hub.bench.infra import BenchError

MB = 1024 * 1024


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Proc:
    """A started child process and its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path, log: IO[bytes]) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self._log = log
        self.handle = psutil.Process(popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss(self) -> int:
        """Resident memory in bytes (0 once it has exited)."""
        try:
            return int(self.handle.memory_info().rss)
        except psutil.Error:
            return 0

    def cpu(self) -> float:
        """CPU seconds used so far (user + system); a load-independent measure of work done."""
        try:
            times = self.handle.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def tail(self, chars: int = 3000) -> str:
        """The end of the child's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


class MemoryWatch:
    """Samples the RSS of chosen processes in a thread; keeps each one's peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self._procs: dict[str, Proc] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-rss", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def watch(self, label: str, proc: Proc) -> None:
        with self._lock:
            self._procs[label] = proc

    def sample(self) -> None:
        with self._lock:
            procs = list(self._procs.items())
        for label, proc in procs:
            rss = proc.rss()
            if rss > self.peaks.get(label, 0):
                self.peaks[label] = rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def peak_mb(self, label: str) -> float | None:
        value = self.peaks.get(label)
        return None if value is None else value / MB


class PeakSampler:
    """Fast sampling of one process while something runs: ``peak - baseline`` in bytes."""

    def __init__(self, proc: Proc, interval: float = 0.01) -> None:
        self.proc = proc
        self.interval = interval
        self.baseline = proc.rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-peak", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.proc.rss())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(2)
        self.peak = max(self.peak, self.proc.rss())


class Processes:
    """Starts children with the run's environment and stops all of them on exit."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.procs: list[Proc] = []

    def spawn(self, name: str, module: str, *args: str, env: Mapping[str, str] | None = None) -> Proc:
        """``python -m module args…`` with stdout and stderr to ``<workdir>/<name>.log``."""
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, **(env or {})},
            start_new_session=True,
            preexec_fn=_pdeathsig,  # noqa: PLW1509
        )
        proc = Proc(name, popen, log_path, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop()
        self.procs.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


async def wait_http(proc: Proc, url: str, *, within: float = 60.0) -> None:
    """Wait until ``url`` answers 200, or fail with the child's log if it exits or times out."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise BenchError(f"{proc.name} did not answer {url} within {within:g} s:\n{proc.tail()}")
            await asyncio.sleep(0.1)


async def run_json(module: str, *args: str, stdin: Any = None, within: float = 300) -> Any:
    """Run ``python -m module args…`` to completion and parse the JSON it prints on stdout."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(orjson.dumps(stdin or {})), within)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        raise BenchError(f"{module} failed ({child.returncode}): {err.decode(errors='replace')[-2000:]}")
    return orjson.loads(out)


async def loadgen(spec: dict[str, Any], *, within: float = 300) -> dict[str, Any]:
    """Run the load generator in its own process with ``spec`` (see :mod:`hub.bench.loadgen`)."""
    result: dict[str, Any] = await run_json("hub.bench.loadgen", stdin=spec, within=within)
    return result


async def loadgen_series(specs: list[dict[str, Any]], *, within: float = 300) -> list[dict[str, Any]]:
    """Several specs, one after the other, in one load-generator process (one start-up, warm pool)."""
    results: list[dict[str, Any]] = await run_json("hub.bench.loadgen", stdin=specs, within=within)
    return results
