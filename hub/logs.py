"""Structured logs on stderr: one JSON object per line in production, readable in ``hub up``."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(*, level: str = "info", fmt: str = "json") -> None:
    """Route structlog and stdlib logging to stderr in ``fmt`` (json | console)."""
    renderer: structlog.types.Processor = structlog.processors.JSONRenderer()
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # set-up chatter and a line per sweeper run (every 5 s) buried what ``hub up`` prints for a newcomer;
    # warnings and failures still show, and the JSON logs of ``hub serve``/``hub worker`` keep everything
    if fmt == "console":
        for name in ("alembic.runtime.plugins", "pgserver", "arq.worker", "coredis.retry"):
            logging.getLogger(name).setLevel(logging.WARNING)
