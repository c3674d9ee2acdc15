"""Keep the garbage collector's full passes short in long-running processes.

A full (generation 2) collection walks every object the collector tracks. In the API and the
worker that is everything imported and built at start-up (SQLAlchemy, pydantic models, the
connectors' tables...): measured during the bench, full passes paused the event loop for 30-70 ms
in the API and 30-100 ms in the worker, stalls that decided the ack and end-to-end p99s.
:func:`settle` moves what exists once the process is ready into the collector's permanent
generation (``gc.freeze()``), so later passes only walk objects made while serving.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then freeze everything alive: start-up state is never scanned again."""
    gc.collect()
    gc.freeze()
