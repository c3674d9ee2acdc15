"""Figures, their ratios to the ceilings, and how they are printed.

``ratio`` is value ÷ ceiling for rates and ceiling ÷ value for latencies and memory, so 1.0 means
"at the limit" and higher is better for every figure (a memory ratio above 1 is room left in the
budget; memory ratios are computed on at least 1 MB). A figure the run could not measure has
``value`` null and a ``note`` saying why — never an invented number.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

#: Every figure, in the order printed (DESIGN "CLI and settings"), with its unit and kind.
FIGURES: dict[str, tuple[str, str]] = {
    "ingest_rate": ("/s", "rate"),
    "ingest_ack_p50_ms": ("ms", "latency"),
    "ingest_ack_p99_ms": ("ms", "latency"),
    "processing_rate": ("/s", "rate"),
    "delivery_rate": ("/s", "rate"),
    "e2e_p50_ms": ("ms", "latency"),
    "e2e_p99_ms": ("ms", "latency"),
    "api_first_page_p99_ms": ("ms", "latency"),
    "export_peak_rss_mb": ("MB", "memory"),
    "api_rss_mb": ("MB", "memory"),
    "worker_rss_mb": ("MB", "memory"),
    "backfill_rate": ("/s", "rate"),
    "cpu_per_order_ms": ("ms", "latency"),
}


MEMORY_FLOOR_MB = 1.0


@dataclass
class Figure:
    """One measured figure and the ceiling it is compared with."""

    name: str
    value: float | None
    ceiling: float | None
    note: str | None = None

    @property
    def unit(self) -> str:
        return FIGURES[self.name][0]

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.ceiling is None or self.ceiling <= 0:
            return None
        kind = FIGURES[self.name][1]
        if kind == "rate":
            return self.value / self.ceiling
        # below 1 MB, RSS sampling noise (allocator pages, GC timing) is all a memory figure shows
        value = max(self.value, MEMORY_FLOOR_MB) if kind == "memory" else self.value
        return self.ceiling / value if value > 0 else None

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": self.name,
            "value": _round(self.value, self.unit),
            "unit": self.unit,
            "ceiling": _round(self.ceiling, self.unit),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
        }
        if self.note:
            row["note"] = self.note
        return row


def _round(value: float | None, unit: str) -> float | None:
    if value is None:
        return None
    return round(value, 1) if unit in ("/s", "MB") else round(value, 2)


def missing(name: str, why: str) -> Figure:
    """A figure that could not be measured in this run."""
    return Figure(name, None, None, why)


def complete(figures: dict[str, Figure]) -> list[Figure]:
    """Every figure in order; the ones no phase produced are reported missing."""
    return [figures.get(name) or missing(name, "not measured: its phase did not run") for name in FIGURES]


def print_json(figures: list[Figure]) -> None:
    """One JSON object per line on stdout, nothing else."""
    for figure in figures:
        sys.stdout.buffer.write(orjson.dumps(figure.as_json()) + b"\n")
    sys.stdout.flush()


def print_table(figures: list[Figure], ceilings: dict[str, float], console: Console) -> None:
    """The human table of figures, then the ceilings measured in the same run."""
    table = Table("figure", "value", "ceiling", "ratio", "note", title="Orderhub bench")
    for figure in figures:
        row = figure.as_json()
        table.add_row(
            figure.name,
            "missing" if row["value"] is None else f"{row['value']:g} {figure.unit}",
            "-" if row["ceiling"] is None else f"{row['ceiling']:g} {figure.unit}",
            "-" if row["ratio"] is None else f"{row['ratio']:.2f}",
            figure.note or "",
        )
    console.print(table)
    if ceilings:
        side = Table("ceiling (same run)", "value", title="Ceilings")
        for name, value in ceilings.items():
            side.add_row(name, f"{value:,.2f}")
        console.print(side)
