"""The ``hub`` command: the edge where settings are built and processes run.

Human output goes to stdout, logs to stderr. Every subcommand takes ``--data-dir`` (or
``HUB_DATA_DIR``) and, when no database or Redis URL is configured, attaches to the embedded
servers of a running ``hub up`` on that folder (or starts them for the length of the command).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import signal
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from hub.cli import status as cli_status
from hub.cli.common import DataDir, attached, configure_logs, console, err, fill, load_settings, run
from hub.cli.sync import sync_app
from hub.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web

T = TypeVar("T")

app = typer.Typer(
    pretty_exceptions_enable=False,
    help="Orderhub: platform order webhooks in, one order model, signed order.* webhooks out.",
)
keys_app = typer.Typer(pretty_exceptions_enable=False, help="Create, list and revoke API keys.")
app.add_typer(keys_app, name="keys")
app.command("status")(cli_status.status)
app.add_typer(sync_app, name="sync")
Host = Annotated[str | None, typer.Option("--host", help="Interface to listen on (default 127.0.0.1).")]
Port = Annotated[int | None, typer.Option("--port", help="Port to listen on (default 8080).")]


# ---- up / serve / worker / migrate ---------------------------------------------------------------


@app.command()
def up(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run everything: embedded Postgres and Redis (unless URLs are set), migrations, API, worker."""
    settings = load_settings(data_dir, host=host, port=port)
    configure_logs(settings, console_format=True)
    from hub import embedded
    from hub.migrate import upgrade

    servers: embedded.EmbeddedServers | None = None
    if settings.embedded:
        servers = embedded.EmbeddedServers(settings.data_dir)
        if not servers.try_lock():
            err.print(f"[red]A hub is already running on {settings.data_dir.resolve()}.[/red]")
            raise typer.Exit(1)
    try:
        if servers is not None:
            urls = servers.start()
            settings = fill(settings, urls.database_url, urls.redis_url)
            console.print(f"Embedded Postgres and Redis running under {servers.data_dir}")
        assert settings.database_url is not None
        upgrade(settings.database_url)
        settings = _with_ops_token(settings)
        run(_up(settings))
    finally:
        if servers is not None:
            servers.stop()
            console.print("Stopped embedded Postgres and Redis.")


def _with_ops_token(settings: Settings) -> Settings:
    """Give ``hub up`` a stable ops token kept in the data folder when none is configured."""
    from pydantic import SecretStr

    if settings.ops_token is not None:
        return settings
    path = settings.data_dir / "ops_token"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return settings.model_copy(update={"ops_token": SecretStr(path.read_text().strip())})


async def _first_run_key(settings: Settings) -> str | None:
    from hub import db
    from hub.models import Organization
    from hub.tenancy.api_keys import create_key

    assert settings.database_url is not None
    engine = db.create_engine(settings.database_url, pool_size=1)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            from sqlalchemy import func, select

            count = (await session.execute(select(func.count()).select_from(Organization))).scalar_one()
            if count:
                return None
            return (await create_key(session, org_name="default")).secret
    finally:
        await engine.dispose()


async def _up(settings: Settings) -> None:

    from hub.app import create_app
    from workers.main import create_worker, stop_gracefully, supervise

    key = await _first_run_key(settings)
    runner = _runner(create_app(settings), settings)
    await _listen(runner, settings)
    worker = create_worker(settings, handle_signals=False, settle_heap=True)
    worker_task = asyncio.create_task(supervise(worker), name="worker")
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    console.print(f"Orderhub is up at [bold]{base}[/bold]  (docs: {base}/docs)")
    assert settings.ops_token is not None
    console.print(f"Ops page: {base}/ops?token={settings.ops_token.get_secret_value()}")
    if key:
        console.print("First run: an API key for organization 'default' (shown once, keep it):")
        console.print(key, soft_wrap=True)
    console.print("Press Ctrl-C to stop.")
    from hub.ops import console as ops_console

    assert settings.database_url is not None
    reporter = asyncio.create_task(ops_console.run(settings.database_url))  # failures, and a summary a minute
    await _wait_for_signal(worker_task)
    console.print("Stopping…")
    reporter.cancel()
    await stop_gracefully(worker, worker_task)
    await _drain(runner)
    await runner.cleanup()


async def _wait_for_signal(*watch: asyncio.Task[Any]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, *watch], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in watch:
        if task.done() and not task.cancelled() and task.exception() is not None:
            err.print(f"[red]{task.get_name()} failed:[/red] {task.exception()!r}")


@app.command()
def serve(data_dir: DataDir = None, host: Host = None, port: Port = None) -> None:
    """Run the API server only (production; workers run with ``hub worker``)."""
    settings = load_settings(data_dir, host=host, port=port)
    if settings.public_url is None and not settings.trust_host_header:  # else inbound_url follows any Host header
        err.print("[red]hub serve needs HUB_PUBLIC_URL[/red] (or HUB_TRUST_HOST_HEADER=true behind a proxy)")
        raise typer.Exit(2)
    configure_logs(settings)
    with attached(settings) as ready:
        run(_serve(ready))


async def _serve(settings: Settings) -> None:

    from hub import heap
    from hub.app import create_app

    runner = _runner(create_app(settings), settings)
    await _listen(runner, settings)
    heap.settle()
    err.print(f"API listening on http://{settings.host}:{settings.port}")
    await _wait_for_signal()
    await _drain(runner)
    await runner.cleanup()


SHUTDOWN_SECONDS = 30.0


async def _listen(runner: web.AppRunner, settings: Settings) -> None:
    """Set the app up and listen; if the address cannot be bound, close what the app opened and say why."""
    from aiohttp import web

    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        await runner.cleanup()  # the app's pools and HTTP clients, so nothing is left unclosed
        if exc.errno == errno.EADDRINUSE:
            err.print(
                f"[red]{settings.host}:{settings.port} is already in use[/red]: stop what listens there, "
                "or choose another port (--port or HUB_PORT)."
            )
            raise typer.Exit(1) from None
        raise


def _runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The API's runner. Slow-loris defence: a connection that has not sent complete request headers
    within ``http_keepalive_seconds`` is closed (aiohttp arms its keep-alive timer when a connection
    opens; its default is an hour); the body deadline is ``hub.web.middleware``'s."""
    from hub.web.server import HubRunner

    return HubRunner(
        app, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS, keepalive_timeout=settings.http_keepalive_seconds
    )


async def _drain(runner: web.AppRunner) -> None:
    """Stop listening, then let the requests in flight finish, bodies still arriving included.

    aiohttp's own shutdown stops reading from every connection at once, so a request whose body was
    still being uploaded when SIGTERM landed would wait out the timeout and get no answer. Here idle
    kept-alive connections are closed, busy ones close after their answer, and the drain lasts at
    most ``SHUTDOWN_SECONDS``; ``runner.cleanup()`` then does the rest.
    """
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is None:
        return

    def busy(conn: web.RequestHandler) -> bool:
        # aiohttp's own flag (private: in a version without it there is no drain, only aiohttp's shutdown)
        return bool(getattr(conn, "_request_in_progress", False))

    for conn in list(server.connections):
        if busy(conn):
            conn.keep_alive(False)
        else:
            conn.close()
    for _ in range(int(SHUTDOWN_SECONDS / 0.05)):  # polled: aiohttp has no "request finished" hook to await
        if not any(busy(conn) for conn in server.connections):
            return
        await asyncio.sleep(0.05)


@app.command()
def worker(data_dir: DataDir = None) -> None:
    """Run an arq worker (ingestion, deliveries, sweeper)."""
    settings = load_settings(data_dir)
    configure_logs(settings)
    with attached(settings) as ready:
        run(_worker(ready))


async def _worker(settings: Settings) -> None:
    from workers.main import create_worker, stop_gracefully, supervise

    # arq binds a Worker to the event loop current when it is built and starts jobs on that loop,
    # so it must be built inside the running loop, or every job waits forever on a loop never run.
    w = create_worker(settings, handle_signals=False, settle_heap=True)
    task = asyncio.create_task(supervise(w), name="worker")  # runs it again when Redis comes back
    await _wait_for_signal(task)
    await stop_gracefully(w, task)


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Create or upgrade the schema (Alembic)."""
    settings = load_settings(data_dir)
    from hub.migrate import upgrade

    with attached(settings, need_redis=False) as ready:
        assert ready.database_url is not None
        upgrade(ready.database_url)
    console.print("Database schema is up to date.")


@app.command()
def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Under 2 minutes; a 100k-order API phase.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Only JSON lines on stdout, one per figure.")] = False,
    data_dir: DataDir = None,
    scale: Annotated[float, typer.Option("--scale", hidden=True, min=0.001, max=10.0)] = 1.0,
    skip: Annotated[str, typer.Option("--skip", hidden=True, help="Comma-separated: ceilings, ingest, api.")] = "",
    e2e_rate: Annotated[
        float, typer.Option("--e2e-rate", hidden=True, min=10.0, max=2000.0, help="Orders/s of the e2e phase.")
    ] = 200.0,
) -> None:
    """Measure the hub against its own parts' ceilings on this machine (docs/benchmarks.md)."""
    settings = load_settings(data_dir)
    from hub.bench.runner import SKIPPABLE, run_bench

    skipped = frozenset(name.strip() for name in skip.split(",") if name.strip())
    if unknown := sorted(skipped - SKIPPABLE):
        raise typer.BadParameter(f"cannot skip {', '.join(unknown)}; choose from {', '.join(sorted(SKIPPABLE))}")
    code = run_bench(
        settings, quick=quick, json_out=json_out, data_dir=data_dir, scale=scale, skip=skipped, e2e_rate=e2e_rate
    )
    raise typer.Exit(code)


# ---- keys ------------------------------------------------------------------------------------------


def _with_session(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from hub import db

    async def scoped() -> T:
        assert settings.database_url is not None
        engine = db.create_engine(settings.database_url, pool_size=1)
        try:
            async with db.session_scope(db.session_factory(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return run(scoped())


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="Organization name (created if new).")],
    test: Annotated[bool, typer.Option("--test", help="A sk_test_ key for the organization's test twin.")] = False,
    name: Annotated[str | None, typer.Option("--name", help="A label for the key.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key; the key is the last line of stdout (shown once)."""
    from hub.tenancy.api_keys import create_key

    if not org.strip():
        err.print("[red]--org must not be empty[/red]")
        raise typer.Exit(2)
    with attached(load_settings(data_dir), need_redis=False) as ready:
        new = _with_session(ready, lambda s: create_key(s, org_name=org.strip(), test=test, name=name))
    console.print(f"Created {new.mode} key {new.id} for organization '{org}' ({new.organization_id}).")
    console.print("Keep it safe: it is shown only once.")
    sys.stdout.write(new.secret + "\n")


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (prefix, organization, mode, state); never the keys themselves."""
    from hub.tenancy.api_keys import list_keys

    with attached(load_settings(data_dir), need_redis=False) as ready:
        rows = _with_session(ready, lambda s: list_keys(s))
    table = Table("id", "prefix", "organization", "mode", "created", "state")
    for column in table.columns:
        column.no_wrap = True
    for key, org in rows:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        table.add_row(key.id, key.prefix + "…", org.name, key.mode, f"{key.created:%Y-%m-%d %H:%M}", state)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")], data_dir: DataDir = None) -> None:
    """Revoke a key: it stops authenticating at once."""
    from hub.tenancy.api_keys import revoke_key

    with attached(load_settings(data_dir), need_redis=False) as ready:
        done = _with_session(ready, lambda s: revoke_key(s, key_id=key_id))
    if not done:
        err.print(f"[red]No active key {key_id}.[/red]")
        raise typer.Exit(1)
    console.print(f"Revoked {key_id}.")


def main() -> None:
    """Console-script entry point: errors end in one readable line, not a traceback."""
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # the edge: anything unexpected becomes one line on stderr
        from hub.embedded import EmbeddedError

        kind = "Embedded server error" if isinstance(exc, EmbeddedError) else type(exc).__name__
        err.print(f"[red]hub: {kind}:[/red] {str(exc).splitlines()[0] if str(exc) else repr(exc)}")
        raise SystemExit(1) from None
