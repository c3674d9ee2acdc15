"""``hub bench`` runs end to end and prints every figure: the CI smoke test of issue 7.

The smallest possible run (``--quick --scale 0.02``: tens of events, a few hundred orders) in a
subprocess, exactly as a user runs it. No timing is asserted: this machine's numbers are for
``docs/benchmarks.md``, not for a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hub.bench.report import FIGURES


@pytest.mark.timeout(600)
def test_bench_prints_every_figure_as_json() -> None:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(f"HUB_{name}", None)
        if os.environ.get(f"HUB_TEST_{name}"):
            env[f"HUB_{name}"] = os.environ[f"HUB_TEST_{name}"]
    done = subprocess.run(
        [sys.executable, "-m", "hub", "bench", "--quick", "--json", "--scale", "0.02"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]  # stdout holds JSON lines only
    assert [row["name"] for row in rows] == list(FIGURES)
    for row in rows:
        assert {"name", "value", "unit", "ceiling", "ratio"} <= row.keys()
        assert row["unit"] == FIGURES[row["name"]][0]
        if row["value"] is None:
            assert row.get("note"), f"{row['name']} is missing without saying why"
