"""The committed Grafana dashboard: every query reads series a live ``/metrics`` scrape has
(or the kube-state-metrics series the dashboard lists), and promtool parses every query."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pynomaly_operator.monitoring import dashboard
from tests.ops.conftest import ROOT, LiveScrape
from tests.ops.promql import metric_names

COMMITTED = ROOT / "manifests" / "monitoring" / "dashboard.json"
# Grafana's variables, replaced as Grafana would before sending the query.
VARIABLES = {
    "$__rate_interval": "1m",
    "$namespace": "payments",
    "$detector": "payments",
}
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*\w+\)$")


def _queries() -> list[tuple[str, str]]:
    model = json.loads(COMMITTED.read_text())
    found = [
        (f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"])
        for panel in model["panels"]
        for target in panel["targets"]
    ]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, variable
            found.append((f"variable {variable['name']}", match.group(1)))
    return found


def _substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr.replace('"$1"', ""), expr
    return expr


def test_committed_dashboard_is_the_generated_one() -> None:
    assert json.loads(COMMITTED.read_text()) == dashboard.dashboard()


def test_panels_cover_what_operators_watch() -> None:
    titles = " ".join(panel["title"].lower() for panel in dashboard.panels())
    for topic in (
        "request rate",
        "latency",
        "error rate",
        "cache hit rate per level",
        "batch sizes",
        "anomaly rate vs contamination",
        "model versions",
        "replicas vs hpa desired",
        "database pool",
    ):
        assert topic in titles
    ids = [panel["id"] for panel in dashboard.panels()]
    assert len(ids) == len(set(ids))


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_every_query_reads_series_of_a_live_scrape(live_scrape: LiveScrape) -> None:
    scraped = live_scrape.names()
    missing = [
        (where, name)
        for where, expr in _queries()
        for name in metric_names(expr)
        if name not in scraped and name not in dashboard.KUBE_STATE_METRICS
    ]
    assert not missing, f"dashboard queries read series no live scrape has: {missing}"


@pytest.mark.promtool
def test_promtool_parses_every_query(promtool: Path, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{index}", "expr": _substituted(expr)}
        for index, (_, expr) in enumerate(_queries())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [str(promtool), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
