"""The deploy check: build the image, bring the compose stack up, use it from outside, crash, scale, down.

Runs as deploy/README.md says (``docker compose up -d --build`` in deploy/, every service but
grafana) and checks through the published ports only: ``/readyz`` through nginx on 8080, an API
key from ``docker compose run --rm migrate hub keys create``, an authenticated call, a signed Salla
webhook becoming an order, a burst of signed webhooks with one worker container killed mid-way
ending with every order exactly once, ``--scale worker=4`` with a second burst, Prometheus on 9090
scraping both APIs and holding the alert rules, the README's rolling upgrade to a new image tag with
``/readyz`` answering 200 throughout, and ``docker compose down -v`` leaving nothing.

On this kind of machine it first installs docker.io and mmdebstrap if missing, starts ``dockerd``
if none answers (and stops it at the end), and builds the stand-in images
(``../shared/tools/standin-images --plugins``; ``--no-standin`` on a host that can pull). It stops
by itself after ``--timeout`` seconds, always tears the stack down, prints one line per step and
exits 0 only if every step passed.

    python deploy/smoke.py                      # needs root, the hub installed (pip install -e .)
    python deploy/smoke.py --events 1000 --timeout 900
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

# beside this script: Python puts a script's own folder first on sys.path
from smoke_host import (
    DEPLOY,
    ROOT,
    SERVICES,
    STANDIN_IMAGES,
    Compose,
    Engine,
    SmokeError,
    ensure_packages,
    say,
    standin_images,
)
from smoke_host import run as host_run
from traffic import Burst, Round, TrafficError, create_connection, drain, push, salla_order, verify

from hub.delivery.signing import new_secret

BASE = "http://127.0.0.1:8080"
PROMETHEUS = "http://127.0.0.1:9090"
ROLL_TAG = "smoke-roll"
#: deploy/README.md's "Rolling a new version", as `docker compose` arguments (a test keeps them equal)
ROLL: list[tuple[str, ...]] = [
    ("build", "migrate"),
    ("run", "--rm", "migrate"),
    ("up", "-d", "--no-deps", "--wait", "api-1"),
    ("exec", "-T", "proxy", "nginx", "-s", "reload"),
    ("up", "-d", "--no-deps", "--wait", "api-2"),
    ("exec", "-T", "proxy", "nginx", "-s", "reload"),
    ("up", "-d", "--no-deps", "worker"),
]
SALLA_SAMPLE = ROOT / "tests" / "connectors" / "payloads" / "salla_order_created.json"


class Timeout(BaseException):
    """The overall time limit passed (a BaseException, so no step's error handling swallows it)."""


@dataclass
class Step:
    """One line of the report."""

    name: str
    ok: bool
    seconds: float
    detail: str


class Smoke:
    """The steps, in order, sharing the compose wrapper, the API key and the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.steps: list[Step] = []
        # fixed for the whole run: compose recreates a service whose variables changed
        self.compose = Compose({"POSTGRES_PASSWORD": secrets.token_hex(12), "ORDERHUB_TAG": "local"})
        self.key = ""

    def step(self, name: str, action: Callable[[], str]) -> None:
        """Run one step and record it; a failure is raised on after it is recorded."""
        say(f"{name} ...")
        started = time.monotonic()
        try:
            detail = action()
        except (SmokeError, TrafficError, aiohttp.ClientError, TimeoutError, AssertionError) as exc:
            self.steps.append(Step(name, False, time.monotonic() - started, str(exc) or type(exc).__name__))
            raise SmokeError(f"{name}: {exc}") from exc
        self.steps.append(Step(name, True, time.monotonic() - started, detail))

    # ---- the stack ---------------------------------------------------------------------------

    def up(self) -> str:
        if self.compose.containers():
            raise SmokeError("an `orderhub` compose project is already running here; stop it first")
        started = time.monotonic()
        self.compose("up", "-d", "--build", *SERVICES, timeout=900)
        built = time.monotonic() - started
        image = json.loads(_docker("image", "inspect", "orderhub:local"))[0]
        asyncio.run(_until(f"{BASE}/readyz", lambda status, _: status == 200, within=180))
        ready = time.monotonic() - started
        return (
            f"image orderhub:local {image['Size'] / 1e6:.0f} MB; `up --build` returned after {built:.0f} s; "
            f"/readyz 200 through nginx after {ready:.0f} s"
        )

    def key_create(self) -> str:
        out = self.compose("run", "--rm", "migrate", "hub", "keys", "create", "--org", "smoke", timeout=180).stdout
        self.key = out.strip().splitlines()[-1].strip()
        assert self.key.startswith("sk_"), f"no key on the last line of: {out[-300:]}"
        return "docker compose run --rm migrate hub keys create --org smoke"

    def authenticated_call(self) -> str:
        async def calls() -> str:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{BASE}/api/v1/orders") as response:
                    assert response.status == 401, f"without a key: {response.status}"
                    error = await response.json()
                    assert "error" in error, error
                headers = {"Authorization": f"Bearer {self.key}"}
                async with http.get(f"{BASE}/api/v1/orders", headers=headers) as response:
                    assert response.status == 200, f"with the key: {response.status} {await response.text()}"
                    body = await response.json()
            return f"GET /api/v1/orders: 401 without the key, 200 with it ({len(body['data'])} orders)"

        return asyncio.run(calls())

    def platform_webhook(self) -> str:
        return asyncio.run(salla_order(BASE, self.key, json.loads(SALLA_SAMPLE.read_text())))

    def crash_burst(self) -> str:
        workers = self.compose.containers("worker")
        assert len(workers) == 2, f"expected 2 running worker containers, found {len(workers)}"
        result = asyncio.run(self._burst(self.args.events, kill=workers[0]))
        state = json.loads(_docker("inspect", workers[0]))[0]
        back = "restarted by Docker" if state["State"]["Running"] else "not restarted"
        return _figures(result, f"{self.args.events} webhooks, 1 of 2 workers killed mid-way ({back})")

    def scale(self) -> str:
        self.compose("up", "-d", "--scale", "worker=4", *SERVICES, timeout=300)
        deadline = time.monotonic() + 60
        while len(workers := self.compose.containers("worker")) != 4:
            if time.monotonic() > deadline:
                raise SmokeError(f"{len(workers)} worker containers run after --scale worker=4")
            time.sleep(1)
        events = max(200, self.args.events // 4)
        result = asyncio.run(self._burst(events, kill=None))
        return _figures(result, f"4 workers; {events} webhooks")

    def prometheus(self) -> str:
        def both_up(status: int, body: Any) -> bool:
            targets = [t for t in body.get("data", {}).get("activeTargets", []) if t["labels"]["job"] == "orderhub-api"]
            return status == 200 and len(targets) == 2 and all(t["health"] == "up" for t in targets)

        asyncio.run(_until(f"{PROMETHEUS}/api/v1/targets", both_up, within=90))
        # a regex, not a YAML parser: the hub's own dependencies carry none
        expected = set(re.findall(r"^\s*- alert: (\w+)", (DEPLOY / "prometheus" / "alerts.yml").read_text(), re.M))
        assert len(expected) >= 6, f"only {len(expected)} alert rules found in alerts.yml"
        _, body = asyncio.run(_get_json(f"{PROMETHEUS}/api/v1/rules?type=alert"))
        loaded = {r["name"] for g in body["data"]["groups"] for r in g["rules"]}
        assert expected <= loaded, f"rules missing from Prometheus: {sorted(expected - loaded)}"
        # the hub's own figures arrived: the orders of the bursts, as scraped
        stored = 1 + self.args.events + max(200, self.args.events // 4)
        query = f"{PROMETHEUS}/api/v1/query?query=max(hub_orders_total)"
        asyncio.run(_until(query, lambda _, body: _scalar(body) >= stored, within=60))
        return f"both API targets up; hub_orders_total >= {stored}; {len(loaded)} alert rules loaded"

    def roll(self) -> str:
        """deploy/README.md's "Rolling a new version" to a new tag, while /readyz is asked every 50 ms."""
        new = self.compose.but(ORDERHUB_TAG=ROLL_TAG)
        workers = f"worker={len(self.compose.containers('worker'))}"
        sequence = [*ROLL[:-1], (*ROLL[-1][:-1], "--scale", workers, "worker")]  # keep the scaled-out workers

        async def rolling() -> dict[str, int]:
            answers: dict[str, int] = {}
            done = asyncio.Event()

            async def poll() -> None:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
                    while not done.is_set():
                        try:
                            async with http.get(f"{BASE}/readyz") as response:
                                answer = str(response.status)
                        except (aiohttp.ClientError, TimeoutError) as exc:
                            answer = type(exc).__name__
                        answers[answer] = answers.get(answer, 0) + 1
                        await asyncio.sleep(0.05)

            polling = asyncio.create_task(poll())
            try:
                for args in sequence:
                    await asyncio.to_thread(new, *args, timeout=300)
            finally:
                done.set()
                await polling
            return answers

        answers = asyncio.run(rolling())
        images = {json.loads(_docker("inspect", c))[0]["Config"]["Image"] for c in self._hub_containers()}
        assert images == {f"orderhub:{ROLL_TAG}"}, f"after the roll the hub containers run {images}"
        assert set(answers) == {"200"}, f"/readyz during the roll: {answers}"
        result = asyncio.run(self._burst(200, kill=None))
        return _figures(result, f"rolled to orderhub:{ROLL_TAG}, /readyz 200 all {answers['200']} times; 200 webhooks")

    def _hub_containers(self) -> list[str]:
        return [c for service in ("api-1", "api-2", "worker") for c in self.compose.containers(service)]

    def down(self) -> str:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "30", timeout=240)
        # the roll's tag only (the image stays as orderhub:local, for the next run's cache)
        host_run(["docker", "image", "rm", f"orderhub:{ROLL_TAG}"], timeout=60, check=False)
        left = self.compose.leftovers()
        assert not left, f"left behind: {left}"
        return "no container, volume or network of the project left"

    async def _burst(self, events: int, *, kill: str | None) -> Round:
        """Push ``events`` signed webhooks (killing container ``kill`` half-way) and check exactly-once."""
        run_id = secrets.token_hex(3)
        secret = new_secret()
        connection_id = await create_connection(8080, self.key, secret, run_id)
        expected = [f"{run_id}-{i:06d}" for i in range(events)]
        burst = Burst([8080], self.key, secret, connection_id, f"smoke{run_id}", expected)
        result = Round(workers=len(self.compose.containers("worker")), events=events)
        started = time.perf_counter()
        pushing = asyncio.create_task(push(burst, result, concurrency=32))
        if kill is not None:
            # push() counts into a plain dataclass: polling it every 50 ms is precise enough
            while result.accepted < events // 2 and not pushing.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await asyncio.to_thread(_docker, "kill", kill)
            say(f"killed worker container {kill[:12]} after {result.accepted} webhooks")
        await pushing
        await drain(burst, result, started=started, within=self.args.drain, stall=90)
        await verify(burst, result)
        if not result.exactly_once:
            raise SmokeError(_figures(result, "not exactly once") + "; " + "; ".join(result.errors[:3]))
        return result


def _docker(*args: str) -> str:
    return host_run(["docker", *args], timeout=60).stdout


def _scalar(body: Any) -> float:
    """The value of a one-sample instant vector from Prometheus' query API (-1 without one)."""
    result = body.get("data", {}).get("result", []) if isinstance(body, dict) else []
    return float(result[0]["value"][1]) if len(result) == 1 else -1.0


def _figures(result: Round, what: str) -> str:
    return (
        f"{what}: {result.processed}/{result.events} orders exactly once, {result.duplicates} doubled, "
        f"{result.missing} missing, {result.seconds:.1f} s ({result.processed / max(result.seconds, 1e-9):.0f}/s)"
    )


async def _get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(url, headers=headers) as response,
    ):
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, {"raw": text[:200]}


async def _until(url: str, done: Callable[[int, Any], bool], *, within: float) -> None:
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = await _get_json(url)
            if done(status, body):
                return
            last = (status, str(body)[:200])
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = exc
        await asyncio.sleep(1)
    raise SmokeError(f"{url} not as expected within {within:.0f} s; last answer: {last}")


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Timeout


def _report(steps: Sequence[Step], total: float, passed: bool) -> str:
    lines = [f"{'PASS' if s.ok else 'FAIL'}  {s.name:<22} {s.seconds:6.1f} s  {s.detail}" for s in steps]
    lines.append(f"deploy smoke: {'PASSED' if passed else 'FAILED'} in {total:.0f} s")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=3000, help="webhooks in the crash burst (default 3000)")
    parser.add_argument("--timeout", type=float, default=1200, help="hard limit of the whole run, s (default 1200)")
    parser.add_argument("--drain", type=float, default=300, help="seconds a burst may take to process")
    parser.add_argument("--standin", type=Path, default=STANDIN_IMAGES, help=f"default {STANDIN_IMAGES}")
    parser.add_argument("--no-standin", action="store_true", help="skip standin-images (a host that can pull)")
    parser.add_argument("--keep", action="store_true", help="leave the stack up afterwards (no `down -v`)")
    args = parser.parse_args(argv)
    if not 100 <= args.events <= 20_000:
        parser.error("--events is 100..20000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every step; 0 when all passed. The stack is taken down and dockerd stopped in any case."""
    args = parse_args(argv)
    started = time.monotonic()
    smoke = Smoke(args)
    engine = Engine(Path(tempfile.mkdtemp(prefix="hub-smoke-")))
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_alarm)
    signal.alarm(int(args.timeout))
    stack_up = False
    passed = False
    try:
        smoke.step("packages", lambda: f"installed {ensure_packages() or 'nothing'}")
        smoke.step("docker engine", engine.ensure)
        if not args.no_standin:
            smoke.step("stand-in images", lambda: standin_images(args.standin))
        stack_up = True
        smoke.step("compose up", smoke.up)
        smoke.step("api key", smoke.key_create)
        smoke.step("authenticated call", smoke.authenticated_call)
        smoke.step("platform webhook", smoke.platform_webhook)
        smoke.step("burst + worker killed", smoke.crash_burst)
        smoke.step("scale worker=4", smoke.scale)
        smoke.step("prometheus", smoke.prometheus)
        smoke.step("rolling new version", smoke.roll)
        passed = True
    except SmokeError as exc:
        say(f"failed: {exc}")
    except (Timeout, KeyboardInterrupt):
        smoke.steps.append(Step("time limit", False, time.monotonic() - started, f"stopped after {args.timeout:.0f} s"))
    finally:
        signal.alarm(0)
        if stack_up and not passed:
            for service in ("migrate", "api-1", "worker"):
                say(f"{service} logs:\n{smoke.compose.logs_tail(service)}")
        if stack_up and not args.keep:
            try:
                smoke.step("compose down -v", smoke.down)
            except SmokeError as exc:
                passed = False
                say(f"failed: {exc}")
        engine.stop()
        if passed:  # the dockerd log is kept only when something failed
            shutil.rmtree(engine.log_dir, ignore_errors=True)
        elif engine.started is not None:
            say(f"dockerd's log: {engine.log_dir / 'dockerd.log'}")
    sys.stdout.write(_report(smoke.steps, time.monotonic() - started, passed) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
