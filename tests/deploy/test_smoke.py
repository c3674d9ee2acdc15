"""Offline facts of the deploy check (deploy/smoke.py); running it needs Docker and is CI's last step."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _smoke() -> Any:
    if str(DEPLOY) not in sys.path:  # as when run as a script: its helper modules sit beside it
        sys.path.insert(0, str(DEPLOY))
    spec = importlib.util.spec_from_file_location("smoke", DEPLOY / "smoke.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["smoke"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_it_brings_up_every_service_but_grafana() -> None:
    services = set(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"])
    assert set(_smoke().SERVICES) == services - {"grafana"}


def test_it_rolls_exactly_as_the_readme_says() -> None:
    readme = (DEPLOY / "README.md").read_text()
    section = readme.split("### Rolling a new version", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [tuple(line.split("#", 1)[0].split()[2:]) for line in section.splitlines() if "docker compose" in line]
    assert commands == [tuple(step) for step in _smoke().ROLL]


def test_it_is_bounded() -> None:
    smoke = _smoke()
    args = smoke.parse_args([])
    assert args.timeout <= 1200
    assert 1000 <= args.events <= 5000  # "a few thousand"
    with pytest.raises(SystemExit):
        smoke.parse_args(["--events", "50000"])


def test_ci_runs_it_last_with_a_time_limit() -> None:
    ci = (DEPLOY.parent / ".ci" / "run").read_text()
    steps = re.findall(r'^echo "== ([^"(]+)', ci, re.M)
    assert steps[-1].startswith("deploy check")
    assert re.search(r"timeout .*python deploy/smoke\.py --timeout", ci)
