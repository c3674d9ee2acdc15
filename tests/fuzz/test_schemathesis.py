"""Property-based fuzzing of the whole HTTP API from its own ``/openapi.json`` (schemathesis + hypothesis).

A real ``hub serve`` runs on 127.0.0.1 against the test run's Postgres and Redis; schemathesis loads
the document it serves and, for every operation, sends valid and invalid requests (bodies, query and
path parameters) authenticated with a real API key (the ops token on ``/ops``). Every answer must be
a non-5xx status the document lists for that operation, with the documented content type, headers
and body schema. ``HUB_FUZZ_EXAMPLES`` sets the examples per operation and mode (default 40: about
50 operations x 2 modes x 40 = a few thousand requests).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.settings import Settings
from tests.faults.checks import record
from tests.faults.platform import make_event, sign
from tests.security.server import Served, hub_serve

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "40"))
OPS_TOKEN = "fuzz-ops-token-0123456789abcdef"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
async def served(settings: Settings, db: asyncpg.Connection, tmp_path: Path) -> AsyncIterator[Served]:
    env = {
        "HUB_OPS_TOKEN": OPS_TOKEN,
        "HUB_RATE_LIMIT": "1000000/second",
        "HUB_RATE_LIMIT_BURST": "1000000",
        "HUB_LOG_LEVEL": "error",
    }
    async with hub_serve(settings, tmp_path, **env) as server:
        yield server


@pytest.fixture
def api_schema(served: Served) -> Any:
    schema = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    schema.config.update(base_url=served.base_url)
    return schema


def _headers(path: str, api_key: str) -> dict[str, str]:
    if path.startswith("/api/v1"):
        return {"Authorization": f"Bearer {api_key}"}
    if path.startswith("/ops"):
        return {"Authorization": f"Bearer {OPS_TOKEN}"}
    return {}


def _fuzz(operation: Any, mode: GenerationMode, api_key: str, counter: list[int], **fixed: Any) -> None:
    """Run ``EXAMPLES`` generated cases of ``operation``; hypothesis shrinks and re-raises a failure."""

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @hypothesis_settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
    )
    def run(case: Any) -> None:
        counter[0] += 1
        headers = {**dict(case.headers or {}), **_headers(case.operation.path, api_key)}
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

    run()


def _real_ids(base_url: str, api_key: str) -> dict[str, str]:
    """One object of each kind, so the fuzzer also reaches handlers past their lookup (``{id}`` routes)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"

    def data(method: str, path: str, body: Any = None) -> Any:
        resp = session.request(method, base_url + path, json=body, timeout=30)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()["data"]

    ids = {"webhook": data("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["order.*"]})}
    ids["contact"] = data("POST", "/api/v1/contacts", {"name": "Fuzz", "phone": "+966501234567"})
    ids["product"] = data("POST", "/api/v1/products", {"name": "Fuzz", "price": "10.00", "stock_quantity": 1000})
    order = {"contact_id": ids["contact"]["id"], "products": [{"product_id": ids["product"]["id"], "quantity": 1}]}
    ids["order"] = data("POST", "/api/v1/orders", order)
    connection = data("POST", "/api/v1/connections", {"source": "generic", "name": "fuzz"})
    ids["connection"] = connection
    event = make_event("fuzz", 1, 0)
    resp = requests.post(
        f"{base_url}/hooks/generic/{connection['id']}",
        data=event.body,
        headers=sign(connection["secret"], event.msg_id, event.body),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    ids["inbound_event"] = resp.json()["data"]
    ids["delivery"] = data("GET", f"/api/v1/webhooks/{ids['webhook']['id']}/deliveries")[0]
    return {kind: str(value["id"]) for kind, value in ids.items()}


KINDS = {
    "/api/v1/contacts/": "contact",
    "/api/v1/orders/": "order",
    "/api/v1/products/": "product",
    "/api/v1/connections/": "connection",
    "/api/v1/inbound-events/": "inbound_event",
    "/api/v1/webhooks/": "webhook",
    "/api/v1/deliveries/": "delivery",
    "/ops/api/deliveries/": "delivery",
    "/ops/api/inbound-events/": "inbound_event",
}


def _fuzz_operations(operations: list[Any], ids: dict[str, str], api_key: str) -> tuple[list[str], int]:
    """Fuzz each of ``operations`` in every mode; the failures (one line each) and the cases sent."""
    failures: list[str] = []
    counter = [0]
    for operation in operations:
        runs: list[tuple[GenerationMode, dict[str, Any]]] = [
            (GenerationMode.POSITIVE, {}),
            (GenerationMode.NEGATIVE, {}),
        ]
        kind = next((k for prefix, k in KINDS.items() if operation.path.startswith(prefix)), None)
        if kind is not None and "{id}" in operation.path:
            runs.append((GenerationMode.POSITIVE, {"path_parameters": {"id": ids[kind]}}))
        for mode, fixed in runs:
            label = f"{operation.label} [{mode.value}{', real id' if fixed else ''}]"
            try:
                _fuzz(operation, mode, api_key, counter, **fixed)
            except Unsatisfiable:
                continue  # e.g. no invalid input exists for an operation without parameters
            except (Exception, BaseExceptionGroup) as exc:  # every operation is tried; failures reported together
                failures.append(f"{label}: {exc}"[:3000])
    return failures, counter[0]


def _in_a_fork(operations: list[Any], ids: dict[str, str], api_key: str) -> Callable[[], tuple[list[str], int]]:
    """Fuzz ``operations`` in a forked process; the returned call waits for its result.

    Generating cases is CPU work in this process (the server barely works), so half of the
    operations run in a fork: both cores of the machine generate. The fork ends with ``os._exit``,
    so nothing it inherited (the test database connection, the event loop) is closed or flushed twice.
    """
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)

    def child() -> None:
        try:
            sender.send(_fuzz_operations(operations, ids, api_key))
        except BaseException as exc:  # noqa: BLE001 - whatever happens, the parent must hear of it
            sender.send(([f"fuzzing fork crashed: {exc!r}"], 0))
        finally:
            os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child, daemon=True)
    process.start()
    sender.close()

    def result() -> tuple[list[str], int]:
        try:
            outcome: tuple[list[str], int] = receiver.recv()
        except EOFError:
            outcome = ([f"fuzzing fork exited with {process.exitcode} without a result"], 0)
        process.join(30)
        return outcome

    return result


def test_every_operation_answers_as_documented(api_schema: Any, api_key: str, served: Served) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40
    ids = _real_ids(served.base_url, api_key)
    # deletions last, after both halves, so the other operations still find the real objects
    deletions = [op for op in operations if op.method.upper() == "DELETE"]
    others = [op for op in operations if op.method.upper() != "DELETE"]
    forked = _in_a_fork(others[1::2], ids, api_key)
    failures, cases = _fuzz_operations(others[0::2], ids, api_key)
    fork_failures, fork_cases = forked()
    last_failures, last_cases = _fuzz_operations(deletions, ids, api_key)
    failures += fork_failures + last_failures
    cases += fork_cases + last_cases
    record("schemathesis", operations=len(operations), cases=cases, failures=len(failures))
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
    assert cases > len(operations) * 2
