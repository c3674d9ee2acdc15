"""``hub sync``: subscribe and pull one connection's orders now, with a progress bar.

Two usages, one engine (``hub.platforms.sync``, the run the worker makes on creation and every
reconcile): ``hub sync CONNECTION_ID [--since ISO-date-or-time]`` for any pulled connection, and
``hub sync chat-agent --connection ID [--since DATE]``, the chat agent's older spelling (same output
as before). The bar and the one-line summary go to stdout, logs and errors to stderr; the exit status
is 1 when the sync failed, with the reason.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from hub.cli.common import DataDir, attached, configure_logs, console, err, load_settings
from hub.cli.common import run as run_async

if TYPE_CHECKING:
    # typer vendors click: its groups take its own copy's Context and Command.
    from typer._click import Command, Context

    from hub.platforms.sync import SyncRun

CONNECTION_COMMAND = "connection"


class SyncGroup(TyperGroup):
    """``hub sync``'s click group: a first argument that names no subcommand is a connection id."""

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        """``hub sync conn_1 …`` runs ``hub sync connection conn_1 …`` (ids never clash with names)."""
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            command = self.get_command(ctx, CONNECTION_COMMAND)
            if command is not None:
                return CONNECTION_COMMAND, command, args
        return super().resolve_command(ctx, args)


sync_app = typer.Typer(
    cls=SyncGroup,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    subcommand_metavar="CONNECTION_ID [--since ISO] | chat-agent --connection ID [--since DATE]",
    help=(
        "Subscribe and pull a connection's orders now, as the worker's reconcile does.\n\n"
        "hub sync CONNECTION_ID [--since 2026-01-01 | 2026-01-01T10:00:00Z]: any connection with platform "
        "credentials.\n\n"
        "hub sync chat-agent --connection ID [--since DATE]: a chat_agent connection (its older spelling)."
    ),
)


def parse_since(value: str | None) -> datetime | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (UTC when it names no offset); BadParameter otherwise."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            "expected an ISO 8601 date or time (2026-01-31, 2026-01-31T10:00:00Z)", param_hint="--since"
        ) from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _pull(connection_id: str, since: datetime | None, data_dir: Path | None, *, source: str | None) -> SyncRun:
    """Run the engine once from the terminal; exit 1 with the reason on stderr when it fails."""
    from hub.cli.connection_sync import sync_now
    from hub.platforms.chat_remote import SyncError

    settings = load_settings(data_dir)
    configure_logs(settings)
    with attached(settings) as ready:
        try:
            return run_async(sync_now(ready, connection_id, since, console=console, err=err, source=source))
        except SyncError as exc:
            done = exc.progress
            stored = f" ({done.orders_seen} orders were read before it stopped)" if done and done.orders_seen else ""
            err.print(f"[red]Sync failed:[/red] {exc}{stored}", highlight=False)
            raise typer.Exit(1) from None


def _unreadable_hint(run: SyncRun) -> None:
    if run.failed:
        console.print("Unreadable orders are kept as failed inbound events: GET /api/v1/inbound-events?status=failed")


@sync_app.command(CONNECTION_COMMAND)
def connection(
    connection_id: Annotated[str, typer.Argument(metavar="CONNECTION_ID", help="The connection's id (conn_…).")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Orders changed since this ISO date or time (default: cursor, else 30 days)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """hub sync CONNECTION_ID: subscribe and pull one connection now (any platform with credentials)."""
    run = _pull(connection_id, parse_since(since), data_dir, source=None)
    console.print(
        f"Synced {connection_id} ({run.mode}): {run.orders_seen} orders since {_iso(run.since)} in {run.pages} pages: "
        f"{run.created} created, {run.changed} changed, {run.unchanged} unchanged, {run.stale} stale, "
        f"{run.failed} unreadable, {run.missed} missed by webhooks.",
        highlight=False,
        soft_wrap=True,
    )
    _unreadable_hint(run)


@sync_app.command("chat-agent")
def chat_agent(
    connection: Annotated[str, typer.Option("--connection", help="The chat_agent connection's id (conn_…).")],
    since: Annotated[
        str | None, typer.Option("--since", help="Orders created from this date (default: cursor, else 30 days).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """hub sync chat-agent --connection ID: pull a chat_agent connection now (same engine)."""
    run = _pull(connection, parse_since(since), data_dir, source="chat_agent")
    console.print(
        f"Synced {run.orders_seen} orders from {run.since.astimezone(UTC).date().isoformat()} in {run.pages} pages: "
        f"{run.created} created, {run.changed} updated, {run.unchanged} unchanged, "
        f"{run.stale} stale, {run.failed} unreadable.",
        highlight=False,
        soft_wrap=True,
    )
    _unreadable_hint(run)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
