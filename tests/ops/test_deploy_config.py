"""The Grafana dashboard and the Prometheus scrape config match what ``/metrics`` really exports."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

yaml: Any = importlib.import_module("yaml")  # PyYAML ships no type hints
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "orderhub.json"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_dashboard_is_a_grafana_dashboard() -> None:
    board = _dashboard()
    assert board["uid"] == "orderhub-ops"
    assert board["schemaVersion"] >= 36
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


async def test_dashboard_queries_only_exported_metrics(client: TestClient[Any, Any]) -> None:
    await client.get("/healthz")  # so the per-process HTTP series have samples too
    text = await (await client.get("/metrics")).text()
    exported: set[str] = set()
    for family in text_string_to_metric_families(text):  # series names, with or without samples yet
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        exported |= {family.name + suffix for suffix in suffixes}
    used = {
        name
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\bhub_[a-z0-9_]+", target["expr"])
    }
    assert used
    assert used <= exported, used - exported


def test_prometheus_scrapes_the_api_metrics() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["orderhub-api"]["metrics_path"] == "/metrics"
    assert config["global"]["scrape_timeout"] <= config["global"]["scrape_interval"]


def test_every_query_and_documented_alert_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses the dashboard's queries and the alert rules Prometheus loads (deploy/prometheus)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    exprs = [
        target["expr"].replace("$__rate_interval", "5m")
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "alerts.yml").write_text((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for name in ("dashboard.yml", "alerts.yml"):
        done = subprocess.run(
            [promtool, "check", "rules", str(tmp_path / name)], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
