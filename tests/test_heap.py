"""``hub.heap.settle``: start-up objects leave the collector's reach, so full passes stay short."""

from __future__ import annotations

import gc

from hub import heap


def test_settle_freezes_what_exists_and_later_objects_stay_collectable() -> None:
    gc.unfreeze()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 1000  # everything imported so far
        before = gc.get_freeze_count()
        cycle: list[object] = []
        cycle.append(cycle)  # made after settling: a full pass still sees (and frees) it
        assert gc.is_tracked(cycle)
        del cycle
        assert gc.collect() >= 1
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()  # this is a test process: give its heap back to the collector
