"""deploy/: the Grafana dashboard and Prometheus config name what Trellis exports."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from server.core import metrics
from tests.support.servers import ROOT

DEPLOY = ROOT / "deploy"


def exported() -> set[str]:
    """Every sample name a scrape of the API can show (queue and dependency gauges included)."""
    text = metrics.render(
        metrics.QueueStats(due=0, delayed=0, oldest_age_seconds=0.0),
        up={"redis": True, "qdrant": True},
    )
    names = set()
    for family in text_string_to_metric_families(text.decode()):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Families with labels show no sample until a label set is used: name their series too.
    for family in list(names):
        names.update(f"{family}{suffix}" for suffix in ("_total", "_bucket", "_count", "_sum"))
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "trellis.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\btrellis_\w+", target["expr"])
    }
    assert len(used) >= 12
    assert used - exported() == set()


def test_prometheus_scrapes_the_api_and_the_workers_metrics_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["trellis-api"]["static_configs"][0]["targets"] == ["api:8123"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    port = compose["x-trellis"]["environment"]["METRICS_PORT"]
    assert jobs["trellis-worker"]["dns_sd_configs"][0]["port"] == port
    assert compose["services"]["prometheus"]["profiles"] == ["observability"]
    assert compose["services"]["grafana"]["profiles"] == ["observability"]


def test_the_observability_guide_lists_every_metric() -> None:
    guide = (ROOT / "docs" / "observability.md").read_text()
    families = {name for name in exported() if name.startswith("trellis_")}
    missing = {
        name
        for name in families
        if name not in guide
        and not name.endswith(("_total", "_bucket", "_count", "_sum", "_created"))
    }
    assert missing == set()
