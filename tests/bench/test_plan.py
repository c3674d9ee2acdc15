"""The bench's plan: the hidden ``--e2e-rate`` keeps the e2e phase's order count, and refuses nonsense."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub.bench.context import E2E_RATE, Plan


@pytest.mark.parametrize("quick", [True, False])
def test_another_e2e_rate_sends_the_same_number_of_orders(quick: bool) -> None:
    usual = Plan.make(quick=quick)
    faster = Plan.make(quick=quick, e2e_rate=800.0)
    assert usual.e2e_rate == E2E_RATE == 200.0
    assert faster.e2e_rate == 800.0
    assert faster.e2e_rate * faster.e2e_seconds == pytest.approx(usual.e2e_rate * usual.e2e_seconds)


def test_an_e2e_rate_out_of_range_is_a_clear_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub", "bench", "--quick", "--e2e-rate", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--e2e-rate" in done.stderr
    assert "Traceback" not in done.stderr
