"""``hub status``: the ops page's summary as tables in the terminal.

It reads the same tables and Redis keys as the page (:func:`hub.ops.actions.summary`), from the
configured ``HUB_DATABASE_URL``/``HUB_REDIS_URL`` or from the running ``hub up`` on ``--data-dir``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from hub.cli.common import DataDir, attached, console, load_settings, run

if TYPE_CHECKING:
    from hub.ops.actions import Summary

#: Endpoints shown (worst first); the rest are summed up in a caption.
ENDPOINT_ROWS = 15
JsonOut = Annotated[bool, typer.Option("--json", help="Print the summary as JSON (the page's /ops/api/summary data).")]


def status(data_dir: DataDir = None, json_out: JsonOut = False) -> None:
    """Queue, backlog, sources, endpoints and the latest failures: what the /ops page shows."""

    with attached(load_settings(data_dir)) as ready:
        result = run(_collect(ready.database_url or "", ready.redis_url or ""))
    if json_out:
        console.print_json(result.model_dump_json())
        return
    console.print(render(result))
    # Printed apart, without wrapping or cropping: a URL cut at the terminal's edge is no use to copy.
    for line in [*retrying_lines(result), *connection_lines(result)]:
        console.print(line, soft_wrap=True)


async def _collect(database_url: str, redis_url: str) -> Summary:
    from hub import db, queue
    from hub.ops import actions as ops

    pool = await db.create_pool(database_url, max_size=2)
    redis = await queue.connect(redis_url)
    try:
        return await ops.summary(pool, redis)
    finally:
        await redis.aclose()
        await pool.close()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


def _tone(value: float | None, warn: float, bad: float) -> str:
    if value is None or value < warn:
        return "green"
    return "yellow" if value < bad else "red"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _when(value: datetime | None) -> str:
    return "–" if value is None else _age((datetime.now(UTC) - value).total_seconds()) + " ago"


def _overview(s: Summary) -> Table:
    table = Table(title="Queue and backlog", title_justify="left", show_header=False, box=None, padding=(0, 2))
    q = s.queue
    jobs = "measuring…" if s.jobs_per_second is None else f"{s.jobs_per_second:.2f}"
    rows = [
        ("queue depth", f"{q.depth} ({q.ready} ready, {q.in_progress} running, {q.deferred} deferred)",
         _tone(q.ready, 1000, 10000)),
        ("oldest queued job", _age(q.oldest_age_seconds), _tone(q.oldest_age_seconds, 10, 60)),
        ("jobs / s", jobs, "green"),
        ("in flight", str(q.in_progress), "green"),
        ("failed", f"{s.failed_jobs} ({s.inbound.failed} inbound, {s.deliveries.failed} deliveries)",
         "yellow" if s.failed_jobs else "green"),
        ("inbound waiting", f"{s.inbound.pending} (oldest {_age(s.inbound.oldest_unprocessed_age_seconds)})",
         _tone(s.inbound.oldest_unprocessed_age_seconds, 10, 60)),
        ("deliveries pending", f"{s.deliveries.pending} ({s.deliveries.due} due)",
         _tone(s.deliveries.oldest_due_age_seconds, 30, 120)),
        ("deliveries retrying", f"{s.deliveries.retrying} (failed, next attempt scheduled)",
         "yellow" if s.deliveries.retrying else "green"),
        ("endpoints disabled", str(s.endpoints_disabled), "yellow" if s.endpoints_disabled else "green"),
    ]  # fmt: skip
    for name, value, tone in rows:
        table.add_row(name, Text(value, style=tone))
    return table


def _sources(s: Summary) -> Table:
    table = Table(title="Sources (last 5 min)", title_justify="left")
    for column in ("source", "received", "/ s", "failed", "bad signature", "bad payload", "all time"):
        table.add_column(column, justify="left" if column == "source" else "right", no_wrap=True)
    for row in s.sources:
        bad_sig = row.rejects_5m.get("bad_signature", 0)
        bad_payload = row.rejects_5m.get("bad_payload", 0)
        table.add_row(
            row.source,
            str(row.received_5m),
            f"{row.rate_per_second:.2f}",
            Text(str(row.failed_5m), style="yellow" if row.failed_5m else ""),
            Text(str(bad_sig), style="red" if bad_sig else ""),
            Text(str(bad_payload), style="yellow" if bad_payload else ""),
            str(sum(row.totals.values())),
        )
    return table


def _endpoints(s: Summary) -> Table:
    table = Table(title="Endpoints (last hour)", title_justify="left")
    for column in ("endpoint", "success", "p50", "p95", "attempts", "failed", "retrying", "gave up", "state"):
        table.add_column(column, justify="right" if column not in ("endpoint", "state") else "left")
    for e in s.endpoints[:ENDPOINT_ROWS]:
        state = Text("enabled", style="green")
        if not e.enabled:
            state = Text(f"disabled: {e.disabled_reason or 'no reason recorded'}", style="bold red")
        elif e.failing_since:
            state = Text(f"failing since {_when(e.failing_since)}", style="yellow")
        rate = e.success_rate
        table.add_row(
            e.url,
            Text(_pct(rate), style="" if rate is None else _tone(1 - rate, 0.01, 0.1)),
            _ms(e.p50_ms),
            _ms(e.p95_ms),
            str(e.attempts_1h),
            Text(str(e.failed_1h), style="yellow" if e.failed_1h else ""),
            Text(str(e.retrying), style="yellow" if e.retrying else ""),
            str(e.failed),
            state,
        )
    if len(s.endpoints) > ENDPOINT_ROWS:
        table.caption = f"… and {len(s.endpoints) - ENDPOINT_ROWS} more, healthier ones (--json lists them all)"
    return table


def _failures(s: Summary) -> Table:
    table = Table(
        title="Latest failures (retry with an API key: POST /api/v1/deliveries/{id}/retry or "
        "/api/v1/inbound-events/{id}/retry)",
        title_justify="left",
    )
    for column in ("kind", "id", "when", "where", "error"):
        table.add_column(column, overflow="fold")
    for i in s.failed_inbound:
        table.add_row("inbound", i.id, _when(i.processed_at or i.received_at), i.source, Text(i.error or "", "red"))
    for d in s.failed_deliveries:
        error = d.last_error or ""
        if d.last_status_code and str(d.last_status_code) not in error:
            error = " · ".join(x for x in (f"HTTP {d.last_status_code}", error) if x)
        table.add_row("delivery", d.id, _when(d.updated), d.endpoint_url, Text(error, "red"))
    return table


def _next(value: datetime | None) -> str:
    if value is None:
        return "sending now"
    seconds = (value - datetime.now(UTC)).total_seconds()
    return "due now" if seconds <= 0 else f"in {_age(seconds)}"


def retrying_lines(s: Summary) -> list[Text]:
    """One line per endpoint whose deliveries fail but still retry: URL, count, next attempt, last error."""
    if not s.retrying:
        return []
    lines = [Text("Failing, still retrying (retry now: POST /api/v1/deliveries/{id}/retry with an API key):")]
    for r in s.retrying:
        error = r.last_error or ""
        if r.last_status_code and str(r.last_status_code) not in error:
            error = " · ".join(x for x in (f"HTTP {r.last_status_code}", error) if x)
        lines.append(
            Text(
                f"  {r.url}  {r.retrying} retrying  next {_next(r.next_attempt_at)} ({r.next_delivery_id})"
                f"  last error: {error or '–'}",
                style="yellow",
            )
        )
    return lines


def connection_lines(s: Summary) -> list[Text]:
    """One line per pulled platform connection: state, last sync, orders webhooks missed, last error."""
    if not s.connections:
        return []
    styles = {"failed": "yellow", "needs_attention": "red"}
    lines = [Text("Platform connections (pull sync; POST /api/v1/connections/{id}/sync to sync now):")]
    for c in s.connections:
        last = c.last_synced_at or "never"
        error = f"  last error: {c.last_error}" if c.last_error else ""
        lines.append(
            Text(
                f"  {c.id} {c.source} '{c.name}'  {c.state}  last sync {last}  {c.orders_seen} seen  "
                f"{c.orders_missed_by_webhooks} missed by webhooks{error}",
                style=styles.get(c.state, ""),
            )
        )
    return lines


def render(s: Summary) -> Group:
    """The summary as rich renderables (tables stacked)."""
    header = Text(f"Orderhub status · {s.generated_at:%Y-%m-%d %H:%M:%S} UTC · rates {s.stats_age_seconds:.0f} s old")
    parts: list[Table | Text] = [header, _overview(s)]
    if s.sources:
        parts.append(_sources(s))
    if s.endpoints:
        parts.append(_endpoints(s))
    if s.failed_inbound or s.failed_deliveries:
        parts.append(_failures(s))
    elif not s.retrying:
        parts.append(Text("Nothing failed.", style="green"))
    return Group(*parts)
