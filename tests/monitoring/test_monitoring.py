"""manifests/monitoring checked with Prometheus' own promtool, and against what korder exports.

The PrometheusRule's groups are checked (``promtool check rules``) and unit-tested
(``promtool test rules`` on ``alerts_test.yaml``, one test per alert); every query of the
Grafana dashboard must parse (promtool checks it as a recording rule) and name only
metrics korder's processes export, taken from the collectors themselves. promtool is
built from its Go module into the cache like the control plane (``hack/promtool``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from korder.api import main
from korder.localcluster import binaries, system
from korder.operator import leadership, observing
from korder.participant_clients import metrics

MONITORING = system.MANIFESTS / "monitoring"
#: Registered in the default registry by their modules, as in the operator's process.
OPERATOR_DEFAULTS = (leadership.LEADER, metrics.BREAKER_STATE, metrics.CALLS)
HERE = Path(__file__).resolve().parent
README = system.MANIFESTS.parent / "README.md"


@pytest.fixture(scope="module")
def promtool() -> Path:
    return binaries.resolve_promtool()


def run(promtool: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(promtool), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def rule() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((MONITORING / "prometheus_rule.yaml").read_text())
    return loaded


def alerts() -> set[str]:
    return {r["alert"] for group in rule()["spec"]["groups"] for r in group["rules"]}


def dashboard_queries() -> Iterator[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield target["expr"]


@pytest.fixture
def rules_folder(tmp_path: Path) -> Path:
    """The rule's groups as a plain rules file, beside the alerts' unit tests."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule()["spec"]["groups"]}))
    shutil.copy(HERE / "alerts_test.yaml", tmp_path)
    return tmp_path


def test_the_rules_are_valid(promtool: Path, rules_folder: Path) -> None:
    out = run(promtool, "check", "rules", "rules.yaml", cwd=rules_folder)
    assert f"{len(alerts())} rules found" in out


def test_every_alert_fires_when_it_should_and_only_then(promtool: Path, rules_folder: Path) -> None:
    run(promtool, "test", "rules", "alerts_test.yaml", cwd=rules_folder)


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    tests = yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
    tested = {t["alertname"] for test in tests for t in test["alert_rule_test"]}
    assert tested == alerts()
    runbooks = set(re.findall(r"^#### (Korder\w+)$", README.read_text(), re.MULTILINE))
    assert runbooks == alerts()
    for name in alerts():
        assert f"README.md, Runbooks, {name}" in (MONITORING / "prometheus_rule.yaml").read_text()


def test_every_dashboard_query_parses(promtool: Path, tmp_path: Path) -> None:
    recorded = [
        {"record": f"korder:dashboard_query:{number}", "expr": query}
        for number, query in enumerate(dashboard_queries())
    ]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]})
    )
    run(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)


#: The sample names each type of family exposes, by suffix.
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> set[str]:
    """Every sample name korder's operator and façade export (process series included).

    From the families rather than their samples: a labelled family with no series yet
    (no breaker moved) exposes no sample, but its names are known.
    """
    app = main.create_app()
    app.build_middleware_stack()  # the request metrics are made with their middleware
    facade = app.state.metrics
    operator = CollectorRegistry()
    observing.Observer(operator)
    names = set()
    for registry in (facade, operator, REGISTRY):  # REGISTRY: breakers, calls, leader, process
        for family in registry.collect():
            names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
            names |= {sample.name for sample in family.samples}
    return names


#: What a PromQL expression holds besides metric names.
_NOT_NAMES = re.compile(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)')
_KEYWORDS = {"by", "without", "on", "ignoring", "and", "or", "unless", "bool", "offset"}


def names_in(query: str) -> set[str]:
    """The metric names a query reads: identifiers that are not functions or keywords."""
    bare = _NOT_NAMES.sub(" ", query)
    found = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare)
    return {name for name in found if name not in _KEYWORDS and not name[0].isdigit()}


def test_the_dashboard_and_the_alerts_name_only_metrics_korder_exports() -> None:
    queries = [*dashboard_queries()]
    queries += [r["expr"] for group in rule()["spec"]["groups"] for r in group["rules"]]
    read = set().union(*(names_in(q) for q in queries))
    assert read  # the parse found names at all
    assert read - exported() == set()


def test_names_in_finds_the_metrics_and_nothing_else() -> None:
    query = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="y"}[5m]))) / b or vector(0)'
    assert names_in(query) == {"a_bucket", "b"}


def test_the_component_adds_the_monitors_the_rule_and_the_dashboard(tmp_path: Path) -> None:
    """manifests/default with the component, as a cluster with the Prometheus Operator has it."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization = {
        "namespace": "korder-system",
        "resources": [os.path.relpath(system.MANIFESTS / "default", overlay)],
        "components": [os.path.relpath(MONITORING, overlay)],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    kubectl = binaries.resolve().kubectl
    out = subprocess.run(
        [str(kubectl), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
    services = {name: o for (kind, name), o in objects.items() if kind == "Service"}
    for name in ("korder-operator", "korder-api"):
        monitor = objects[("ServiceMonitor", name)]
        assert monitor["metadata"]["namespace"] == "korder-system"
        # It selects the component's Service, and scrapes a port that Service has.
        (service,) = [
            s
            for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert objects[("PrometheusRule", "korder")]["spec"] == rule()["spec"]
    (dashboard,) = [o for (kind, name), o in objects.items() if name.startswith("korder-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["korder.json"])["uid"] == "korder"
