"""``hub serve`` at its edges (issue 20.7): oversized headers get DESIGN's JSON error, and the inbound
URLs it hands out never follow a client's Host header unless the operator said a proxy sets it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson

from hub.settings import Settings
from tests.security.server import hub_serve


async def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


async def test_a_header_over_the_limit_is_a_json_4xx_without_a_traceback(settings: Settings, tmp_path: Path) -> None:
    async with hub_serve(settings, tmp_path) as served:
        big = b"x" * 20_000
        status, headers, body = await _raw(
            served.port, b"GET /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + big + b"\r\n\r\n"
        )
        assert 400 <= status < 500
        assert headers["content-type"].startswith("application/json")
        payload = orjson.loads(body)
        assert payload["success"] is False
        assert payload["code"] == status
        long_line, *_ = await _raw(served.port, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert 400 <= long_line < 500
    log = served.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "malformed_request" in log


async def test_serve_refuses_to_guess_its_public_url(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_DATABASE_URL": settings.database_url or "",
        "HUB_REDIS_URL": settings.redis_url or "",
        "HUB_DATA_DIR": str(tmp_path),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "serve", "--port", "0", env=env, stdout=-1, stderr=-1
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert "HUB_PUBLIC_URL" in err.decode()


async def test_a_port_in_use_is_one_clear_line_and_nothing_left_open(settings: Settings, tmp_path: Path) -> None:
    taken = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = taken.sockets[0].getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_DATABASE_URL": settings.database_url or "",
        "HUB_REDIS_URL": settings.redis_url or "",
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_PUBLIC_URL": "http://127.0.0.1",
    }
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "serve", "--port", str(port), env=env, stdout=-1, stderr=-1
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        taken.close()
    text = (out + err).decode()
    assert proc.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in text
    assert "Traceback" not in text
    assert "Unclosed" not in text  # the app's pools and HTTP clients were closed
