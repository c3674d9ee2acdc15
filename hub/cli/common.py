"""What every ``hub`` subcommand shares: the consoles, settings built at the edge, the event loop,
and attaching to a running ``hub up``'s embedded servers (or starting them for one command).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from hub.settings import Settings

T = TypeVar("T")

console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Embedded data folder (default .hub, or HUB_DATA_DIR).")
]


def load_settings(data_dir: Path | None = None, **values: Any) -> Settings:
    overrides = {k: v for k, v in values.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return Settings(**overrides)
    except Exception as exc:  # pydantic ValidationError: show it plainly, no traceback
        err.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


def run(coro: Awaitable[T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is not on every platform
        return asyncio.run(coro)  # type: ignore[arg-type]


def fill(settings: Settings, database_url: str, redis_url: str) -> Settings:
    """Configured URLs win; missing ones come from the embedded servers."""
    return settings.model_copy(
        update={"database_url": settings.database_url or database_url, "redis_url": settings.redis_url or redis_url}
    )


@contextlib.contextmanager
def attached(settings: Settings, *, need_redis: bool = True) -> Iterator[Settings]:
    """``settings`` with URLs: configured ones, a running ``hub up``'s, or embedded ones for now."""
    from hub import embedded

    if settings.database_url and (settings.redis_url or not need_redis):
        yield settings
        return
    running = embedded.read_runtime(settings.data_dir)
    if running is not None:
        yield fill(settings, running.database_url, running.redis_url)
        return
    servers = embedded.EmbeddedServers(settings.data_dir)
    if not servers.try_lock():
        err.print(f"[red]{settings.data_dir} is locked by another hub that is starting or stopping; try again.[/red]")
        raise typer.Exit(1)
    try:
        urls = servers.start()
        from hub.migrate import upgrade

        upgrade(urls.database_url)
        yield fill(settings, urls.database_url, urls.redis_url)
    finally:
        servers.stop()


def configure_logs(settings: Settings, *, console_format: bool = False) -> None:
    from hub import logs

    logs.configure(level=settings.log_level, fmt="console" if console_format else settings.log_format)
