"""deploy/: the Grafana dashboard and the Prometheus rules only use metrics the worker really exports
(read from its live /metrics endpoint), every rule has what Alertmanager needs, and the dashboard is a
well-formed Grafana import. ``promtool check rules`` runs too where Debian's prometheus is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.worker.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES, DASHBOARD = DEPLOY / "prometheus" / "alerts.yml", DEPLOY / "grafana" / "cappuccino-paper.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
PROMQL_FUNCTIONS = {"up"}  # Prometheus' own series of every scrape target


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name the worker's endpoint announces (from its # TYPE lines, with their suffixes)."""
    tmp = tmp_path_factory.mktemp("metrics")
    config = tmp / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[paths]\nstate = "state"\n[metrics]\nenabled = true\nport = 0\n')
    metrics = WorkerMetrics.start(load_settings(config, require_model_dir=False))
    assert metrics.address is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics.address[1]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    metrics.close()
    names: set[str] = set()
    for match in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        name, kind = match.groups()
        names.add(name)
        names.update(name + s for s in SUFFIXES.get(kind, ()))
    return names


def _metrics_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(cappuccino_[a-z_]+|up)\b", expr))


def _balanced(expr: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    closing = {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"[^"]*"', "", expr):
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                return False
    return all(v == 0 for v in depth.values())


def test_every_alert_rule_is_complete_and_uses_exported_metrics(exported: set[str]) -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules: list[dict[str, Any]] = [r for g in groups for r in g["rules"]]
    names = {r["alert"] for r in rules}
    for needed in (
        "CappuccinoStaleBars",
        "CappuccinoWorkerRestarting",
        "CappuccinoModelHalted",
        "CappuccinoParityAlarm",
    ):
        assert needed in names
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert _balanced(rule["expr"]), rule["alert"]
        used = _metrics_in(rule["expr"])
        assert used and used - PROMQL_FUNCTIONS <= exported, (rule["alert"], used - exported)


def test_the_dashboard_is_a_grafana_import_over_exported_metrics(exported: set[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert {"title", "uid", "schemaVersion", "panels", "templating"} <= set(dash)
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"DS_PROMETHEUS", "model"} <= variables
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 8
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("equity", "drawdown", "order", "restart", "halt", "parity", "bar close"):
        assert topic in titles, topic
    for p in dash["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
        for target in p["targets"]:
            assert _balanced(target["expr"]), p["title"]
            used = _metrics_in(target["expr"])
            assert used and used <= exported, (p["title"], used - exported)


def test_a_misspelt_metric_would_be_caught(exported: set[str]) -> None:
    assert not _metrics_in("rate(cappuccino_order_total[5m])") <= exported
    assert not _balanced("sum(rate(x[5m])")


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
