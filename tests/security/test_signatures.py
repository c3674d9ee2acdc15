"""Inbound signatures: compared in constant time, and stale or future Standard Webhooks timestamps refused.

The constant-time property is checked statically (``ast``): every connector's ``verify`` reaches
``hmac.compare_digest`` (directly or through the shared Standard Webhooks module), and no connector
compares a signature, digest, token or secret with ``==``/``!=``/``in``. The timestamp tolerance is
checked end to end through ``POST /hooks/{source}/{id}`` for both Standard Webhooks sources.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from connectors import REGISTRY
from tests.faults.platform import make_event, sign

Client = TestClient[Any, Any]
CONNECTORS = Path(__file__).parents[2] / "connectors"
SECRETISH = ("sig", "digest", "mac", "token", "secret", "expected", "given", "authorization")
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _secretish(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return False
    return any(part in name.lower() for name in _names(node) for part in SECRETISH)


def _calls(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.add(f"{func.value.id}.{func.attr}")
            elif isinstance(func, ast.Name):
                found.add(func.id)
    return found


def _module(name: str) -> ast.Module:
    return ast.parse((CONNECTORS / f"{name}.py").read_text())


def _reachable_calls(tree: ast.Module, start: ast.AST) -> set[str]:
    """Calls made by ``start`` and, transitively, by the module-level functions it calls."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    seen: set[str] = set()
    calls = _calls(start)
    todo = [c for c in calls if c in functions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        more = _calls(functions[name])
        calls |= more
        todo += [c for c in more if c in functions]
    return calls


@pytest.mark.parametrize("source", sorted(REGISTRY))
def test_every_connector_verifies_with_compare_digest(source: str) -> None:
    module_name = type(REGISTRY[source]).__module__.rsplit(".", 1)[-1]
    tree = _module(module_name)
    verify = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "verify"
    )
    calls = _reachable_calls(tree, verify)
    if "_standard_webhooks.verify" in calls:
        shared = _module("_standard_webhooks")
        shared_verify = next(n for n in shared.body if isinstance(n, ast.FunctionDef) and n.name == "verify")
        calls |= _reachable_calls(shared, shared_verify)
    assert "hmac.compare_digest" in calls, f"{source}: verify() never reaches hmac.compare_digest"


@pytest.mark.parametrize("path", sorted(p.name for p in CONNECTORS.glob("*.py")))
def test_no_connector_compares_secrets_with_ordinary_equality(path: str) -> None:
    tree = ast.parse((CONNECTORS / path).read_text())
    offending = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        if any(isinstance(s, ast.Constant) for s in sides):
            continue  # against a literal (a header name, a strategy keyword, "", None): nothing leaks
        if any(_secretish(s) for s in sides):
            offending.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not offending, f"{path}: secrets compared with ordinary equality:\n" + "\n".join(offending)


async def _connection(client: Client, auth: dict[str, str], source: str) -> str:
    body = {"source": source, "name": source, "secret": WHSEC}
    resp = await client.post("/api/v1/connections", json=body, headers=auth)
    assert resp.status == 201, await resp.text()
    connection_id: str = (await resp.json())["data"]["id"]
    return connection_id


@pytest.mark.parametrize("source", ["generic", "chat_agent"])
@pytest.mark.parametrize(
    ("skew", "accepted"),
    [(-310, False), (310, False), (-3600, False), (86_400 * 365, False), (-280, True), (280, True), (0, True)],
)
async def test_standard_webhooks_timestamps_outside_five_minutes_are_refused(
    client: Client, db: asyncpg.Connection, auth: dict[str, str], source: str, skew: int, accepted: bool
) -> None:
    connection_id = await _connection(client, auth, source)
    event = make_event(f"skew{skew}", 1, 0)
    headers = sign(WHSEC, event.msg_id, event.body, timestamp=int(time.time()) + skew)
    resp = await client.post(f"/hooks/{source}/{connection_id}", data=event.body, headers=headers)
    stored = await db.fetchval("SELECT count(*) FROM inbound_events WHERE connection_id = $1", connection_id)
    if accepted:
        assert resp.status == 200, await resp.text()
        assert stored == 1
    else:
        assert resp.status == 401, await resp.text()
        assert "webhook-timestamp" in (await resp.json())["details"]["signature"]
        assert stored == 0


async def test_a_replayed_signature_with_a_fresh_timestamp_is_refused(
    client: Client, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    connection_id = await _connection(client, auth, "generic")
    event = make_event("replay", 1, 0)
    old = sign(WHSEC, event.msg_id, event.body, timestamp=int(time.time()) - 600)
    replay = {**old, "webhook-timestamp": str(int(time.time()))}  # the timestamp is signed too
    resp = await client.post(f"/hooks/generic/{connection_id}", data=event.body, headers=replay)
    assert resp.status == 401
    assert await db.fetchval("SELECT count(*) FROM inbound_events") == 0


async def test_the_inbound_tolerance_setting_is_honoured(
    settings: Any, db: asyncpg.Connection, auth: dict[str, str]
) -> None:
    from aiohttp.test_utils import TestServer

    from hub.app import create_app

    strict = settings.model_copy(update={"inbound_tolerance_seconds": 60})
    async with TestClient(TestServer(create_app(strict), host="127.0.0.1")) as client:
        connection_id = await _connection(client, auth, "generic")
        event = make_event("tolerance", 1, 0)
        headers = sign(WHSEC, event.msg_id, event.body, timestamp=int(time.time()) - 120)
        resp = await client.post(f"/hooks/generic/{connection_id}", data=event.body, headers=headers)
        assert resp.status == 401
