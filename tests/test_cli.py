"""The ``hub`` command as a newcomer runs it: real processes, real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from hub.settings import Settings


def _cmdline(process: psutil.Process) -> str:
    """A process's command line, or "" for one that ended (or became a zombie) while we looked."""
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess is a NoSuchProcess
        return ""


def _hub(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return children
    except psutil.NoSuchProcess:
        return []


def _running_under(folder: Path) -> list[str]:
    """Live processes whose command line names ``folder`` (processes may vanish while we look)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if str(folder) in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.info['pid']}: {cmd}")
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def test_hub_up_embedded_then_sigterm_leaves_nothing(tmp_path: Path, free_port: int) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "up", "--data-dir", str(data), "--port", str(free_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_clean_env(),
    )
    base = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            try:
                status, _ = _get(base + "/readyz")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, "hub up did not become ready within 30 s"
        children = _descendants(proc.pid)
        assert any("postgres" in line for line in map(_cmdline, psutil.process_iter()) if str(data) in line)

        created = _hub("keys", "create", "--org", "acme", "--data-dir", str(data), env=_clean_env())
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        assert key.startswith("sk_live_")
        status, body = _get(base + "/api/v1/contacts", {"Authorization": f"Bearer {key}"})
        assert status == 200, body
        status, body = _get(base + "/api/v1/contacts", {"Authorization": "Bearer sk_live_" + "x" * 43})
        assert status == 401
        assert body["code"] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "sk_live_" in out  # the first-run key
    time.sleep(0.5)
    assert not [c for c in children if _alive(c)]
    assert _running_under(data) == []


def test_hub_up_sigkill_guardian_stops_servers(tmp_path: Path, free_port: int) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "up", "--data-dir", str(data), "--port", str(free_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_clean_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (data / "runtime.json").exists():
            time.sleep(0.2)
        assert (data / "runtime.json").exists()
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and _running_under(data):
        time.sleep(0.2)
    assert _running_under(data) == [], "the guardian did not stop the embedded servers"


def test_keys_create_list_revoke_against_configured_urls(settings: Settings, db: object) -> None:
    env = {**_clean_env(), "HUB_DATABASE_URL": settings.database_url or "", "HUB_REDIS_URL": settings.redis_url or ""}
    created = _hub("keys", "create", "--org", "clistore", "--test", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk_test_")
    listed = _hub("keys", "list", env=env)
    assert listed.returncode == 0
    assert "clistore" in listed.stdout
    assert key not in listed.stdout
    key_id = next(word for word in listed.stdout.split() if word.startswith("key_"))
    revoked = _hub("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    again = _hub("keys", "revoke", key_id, env=env)
    assert again.returncode == 1
