"""deploy/monitoring: Prometheus scrape config and alert rules, Grafana provisioning and dashboards, and
docs/runbook.md. Every series a rule or a panel queries must exist — registered by the platform's code,
FastStream's middleware, the Kafka exporter or Prometheus itself — with the labels the query uses."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from tests.deploy.support import COMPOSE_DIR, MONITORING, REPO, RUNBOOK, SERVICES, github_anchors


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


PROMETHEUS_DIR = MONITORING / "prometheus"
GRAFANA_DIR = MONITORING / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
SEVERITIES = {"critical", "warning", "info"}
# Series from outside the Python code, with their labels.
EXTERNAL_SERIES = {
    "up": set(),  # Prometheus, per target
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},  # danielqsj/kafka-exporter
    "kafka_consumergroup_lag_sum": {"consumergroup", "topic"},
    "kafka_consumergroup_members": {"consumergroup"},
    "kafka_consumergroup_current_offset": {"consumergroup", "topic", "partition"},
    "kafka_topic_partitions": {"topic"},
    "kafka_brokers": set(),
}
TARGET_LABELS = {"job", "instance", "service", "le"}  # attached by the scrape config (le: histogram buckets)
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
}  # fmt: skip


# -- what the code exposes -----------------------------------------------------------------------------


def _modules_with_metrics() -> Iterator[str]:
    for root in ("shared", "services"):
        for path in sorted((REPO / root).rglob("*.py")):
            relative = path.relative_to(REPO)
            if {"tests", "migrations"} & set(relative.parts):
                continue
            if "prometheus_client" in path.read_text():
                yield ".".join(relative.with_suffix("").parts)


def _labels_of(registry: CollectorRegistry) -> dict[str, set[str]]:
    return {
        name: set(getattr(collector, "_labelnames", ()))
        for name, collector in registry._names_to_collectors.items()  # exposition names, with suffixes
    }


@pytest.fixture(scope="module")
def known_series() -> dict[str, set[str]]:
    """Every series name the platform exposes, with its label names."""
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

    for module in _modules_with_metrics():
        importlib.import_module(module)
    series = _labels_of(REGISTRY)
    faststream = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=faststream, app_name="probe")
    series |= _labels_of(faststream)
    series |= EXTERNAL_SERIES
    return series


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """The vector selectors of a PromQL expression: (metric name, label names matched)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations, $__rate_interval
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = []
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", text):
        name, matchers = match.group(1), match.group(2) or ""
        if text[match.end() :].lstrip().startswith("(") or name in _KEYWORDS:
            continue  # a function or an aggregation, not a series
        found.append((name, set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))))
    return found


def grouping_labels(expr: str) -> set[str]:
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in group.split(",") if label.strip()}
    return labels


def check_expression(expr: str, known: dict[str, set[str]], where: str) -> None:
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), f"{where}: unbalanced"
    found = selectors(expr)
    assert found, f"{where}: queries no series"
    labels_in_play = set(TARGET_LABELS)
    for name, matched in found:
        assert name in known, f"{where}: {name} is exposed by nothing"
        assert matched <= known[name] | TARGET_LABELS, f"{where}: {name} has no label {matched - known[name]}"
        labels_in_play |= known[name]
    assert grouping_labels(expr) <= labels_in_play, f"{where}: groups by {grouping_labels(expr) - labels_in_play}"


def test_the_expression_reader_finds_selectors_and_labels() -> None:
    expr = 'sum by (service, le) (rate(registry_batch_seconds_bucket{service=~"a|b"}[$__rate_interval])) > 0'
    assert selectors(expr) == [("registry_batch_seconds_bucket", {"service"})]
    assert grouping_labels(expr) == {"service", "le"}


# -- alert rules -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    document = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_is_complete(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), rule["alert"]


def test_every_rule_links_to_an_existing_runbook_section(rules: list[dict[str, Any]]) -> None:
    anchors = github_anchors(RUNBOOK.read_text())
    for rule in rules:
        url = urlsplit(rule["annotations"]["runbook_url"])
        assert (REPO / url.path) == RUNBOOK, rule["alert"]
        assert url.fragment in anchors, f"{rule['alert']}: docs/runbook.md has no #{url.fragment}"


def test_rules_query_series_that_exist(rules: list[dict[str, Any]], known_series: dict[str, set[str]]) -> None:
    for rule in rules:
        check_expression(rule["expr"], known_series, rule["alert"])


def test_the_operational_signals_are_all_alerted_on(rules: list[dict[str, Any]]) -> None:
    queried = {name for rule in rules for name, _ in selectors(rule["expr"])}
    required = {
        "up",  # a service down
        "kafka_consumergroup_lag",  # consumer lag growing
        "registry_dead_letters_total",  # dead letters appearing
        "intake_outbox_backlog",  # outbox backlog growing
        "export_delivery_failures_total",  # export failures
        "stats_reminders_outstanding",  # reminders overdue
    }
    assert required <= queried
    down = next(rule for rule in rules if 'up{job="registry"}' in rule["expr"])
    assert "== 0" in down["expr"]
    dead = next(rule for rule in rules if "registry_dead_letters_total" in rule["expr"])
    assert "increase(registry_dead_letters_total[10m])" in dead["expr"] and "> 0" in dead["expr"]


# -- Prometheus configuration --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return load_yaml(PROMETHEUS_DIR / "prometheus.yml")


@pytest.fixture(scope="module")
def compose_services() -> dict[str, Any]:
    return load_yaml(COMPOSE_DIR / "compose.yaml")["services"]


def test_prometheus_loads_the_rule_files(prometheus: dict[str, Any]) -> None:
    assert prometheus["rule_files"]
    for rule_file in prometheus["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file()


def test_prometheus_scrapes_each_service_at_its_port(
    prometheus: dict[str, Any], compose_services: dict[str, Any]
) -> None:
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    targets = {config["labels"]["service"]: config["targets"] for config in jobs["registry"]["static_configs"]}
    assert set(targets) == set(SERVICES)
    for name, (target,) in targets.items():
        host, _, port = target.partition(":")
        assert host == name and host in compose_services
        assert compose_services[name]["environment"][f"{name.upper()}_HTTP_PORT"] == port
    assert jobs["registry"].get("metrics_path", "/metrics") == "/metrics"
    (exporter,) = jobs["kafka-exporter"]["static_configs"][0]["targets"]
    assert exporter.split(":")[0] in compose_services


def test_compose_mounts_the_monitoring_files_where_they_are_read(compose_services: dict[str, Any]) -> None:
    prometheus = compose_services["prometheus"]
    config_flag = next(flag for flag in prometheus["command"] if flag.startswith("--config.file="))
    config_path = Path(config_flag.split("=", 1)[1])
    mount = next(v.split(":") for v in prometheus["volumes"] if v.split(":")[1] == str(config_path.parent))
    assert (COMPOSE_DIR / mount[0] / config_path.name).resolve() == (PROMETHEUS_DIR / "prometheus.yml").resolve()
    grafana = {
        v.split(":")[1]: (COMPOSE_DIR / v.split(":")[0]).resolve() for v in compose_services["grafana"]["volumes"]
    }
    assert grafana["/etc/grafana/provisioning"] == (GRAFANA_DIR / "provisioning").resolve()
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "registry.yaml")
    (entry,) = provider["providers"]
    assert grafana[entry["options"]["path"]] == (GRAFANA_DIR / "dashboards").resolve()


# -- Grafana -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def datasource_uid() -> str:
    provisioning = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml")
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == "prometheus" and urlsplit(datasource["url"]).hostname == "prometheus"
    return str(datasource["uid"])


def test_the_two_dashboards_exist() -> None:
    assert {path.name for path in DASHBOARDS} == {"platform.json", "registry-reporting.json"}


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels += panel.get("panels", [])  # collapsed rows hold their panels
    return panels


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource_variable = variables["datasource"]
    assert datasource_variable["type"] == "datasource" and datasource_variable["query"] == "prometheus"
    ids = [panel["id"] for panel in panels_of(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels_of(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_defaults_to_the_provisioned_datasource(path: Path, datasource_uid: str) -> None:
    variables = {v["name"]: v for v in json.loads(path.read_text())["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == datasource_uid


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in json.loads(path.read_text())["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[x, y] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_series_that_exist(path: Path, known_series: dict[str, set[str]]) -> None:
    dashboard = json.loads(path.read_text())
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            check_expression(target["expr"], known_series, f"{path.name}: {panel['title']}")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"]).groups()  # type: ignore[union-attr]
            assert label in known_series[metric], variable["name"]


def test_platform_dashboard_covers_throughput_latency_lag_errors_and_health() -> None:
    queried = {
        name
        for panel in panels_of(json.loads((GRAFANA_DIR / "dashboards" / "platform.json").read_text()))
        for target in panel.get("targets", [])
        for name, _ in selectors(target["expr"])
    }
    assert {
        "registry_events_processed_total",
        "faststream_received_messages_total",
        "registry_batch_seconds_bucket",
        "kafka_consumergroup_lag",
        "registry_dead_letters_total",
        "up",
    } <= queried


def test_reporting_dashboard_is_per_hospital() -> None:
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "registry-reporting.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["hospital"]["type"] == "query" and variables["hospital"]["includeAll"]
    queried: set[str] = set()
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            for name, matched in selectors(target["expr"]):
                queried.add(name)
                if name.startswith(("stats_", "intake_submissions")):
                    assert "hospital" in matched, f"{panel['title']}: {name} is not filtered by $hospital"
    assert {
        "stats_submissions_accepted_total",
        "stats_submissions_rejected_total",
        "stats_reminders_outstanding",
        "intake_submissions_total",
        "export_transfers_total",
    } <= queried


# -- runbook -------------------------------------------------------------------------------------------


def test_runbook_links_inside_itself_resolve() -> None:
    text = RUNBOOK.read_text()
    anchors = github_anchors(text)
    for fragment in re.findall(r"\]\(#([^)]+)\)", text):
        assert fragment in anchors, fragment
    for target in re.findall(r"\]\((\.\./[^)#]+)", text):
        assert (RUNBOOK.parent / target).exists(), target


def test_runbook_covers_the_operations() -> None:
    anchors = github_anchors(RUNBOOK.read_text())
    assert {
        "scale-a-consumer-service",
        "add-partitions-to-a-topic",
        "rotate-the-pseudonymisation-and-vault-keys",
        "recover-from-a-broker-loss",
        "redrive-dead-letters",
        "rebuild-the-stats",
        "re-run-the-export-after-an-outage",
    } <= anchors


def test_github_anchor_rules() -> None:
    assert github_anchors("## Alert: RegistryServiceDown\n## Re-run the export, after an outage\n# A\n# A") == {
        "alert-registryservicedown",
        "re-run-the-export-after-an-outage",
        "a",
        "a-1",
    }
