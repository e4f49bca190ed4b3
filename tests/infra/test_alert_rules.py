"""The AMP alert rules and the scrape configuration, offline.

- Every metric and label a rule names is one dataflow/metrics.py really exposes (so a renamed metric or label
  breaks here, not silently in AMP).
- `promtool test rules` plays each alert on synthetic series (fires when it should, stays quiet when healthy).
  promtool comes with Debian's `prometheus` package; without it those tests skip, saying so.
- The scrape configuration's relabelling, applied to the targets Kubernetes discovery would give for a
  dataflow pod, yields one target on :9108 (and one on the recovery supervisor's port where it has one).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import dataflow.metrics as dataflow_metrics
from infra.alert_rules import DATAFLOW_JOB, RECOVERY_JOB, RECOVERY_PORT_NAME, rules, rules_yaml, scrape_config
from infra.config import AlarmThresholds
from infra.workload import METRICS_PORT

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_LABELS = {"job", "instance", "namespace", "pod", "le"}
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
# .ci/run installs promtool and sets REVIEWSTREAM_PROMTOOL_TESTS=1: there a missing promtool fails, not skips.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("REVIEWSTREAM_PROMTOOL_TESTS") != "1",
    reason="promtool not installed (apt-get install -y --no-install-recommends prometheus)",
)


PROBE = "__probe__"


def label_names(metric: MetricWrapperBase) -> set[str]:
    """A collector's label names through prometheus_client's public API: a probe child of the right arity
    reports them in its samples, then is removed (an unlabelled metric takes no child at all)."""
    for count in range(1, 9):
        try:
            metric.labels(*[PROBE] * count)
        except ValueError:  # wrong arity, or no labels at all
            continue
        try:
            (family,) = metric.collect()
            return {k for sample in family.samples for k, v in sample.labels.items() if v == PROBE}
        finally:
            metric.remove(*[PROBE] * count)
    return set()


def exposed() -> dict[str, set[str]]:
    """Sample name -> label names, for every collector dataflow/metrics.py registers (its real registry)."""
    names: dict[str, set[str]] = {}
    for value in vars(dataflow_metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        (family,) = value.describe()
        labels = label_names(value)
        suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}[family.type]
        for suffix in suffixes:
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    assert "reviewstream_records_read_total" in names and names["reviewstream_records_read_total"] == {"shard"}
    assert {f.name for f in REGISTRY.collect()} >= {"reviewstream_records_read"}  # the same registry /metrics serves
    return names


def referenced(expr: str) -> dict[str, set[str]]:
    """Metric name -> label names a PromQL expression matches on or groups by."""
    found: dict[str, set[str]] = {m: set() for m in re.findall(r"\b(reviewstream_[a-z0-9_]+)", expr)}
    for metric, matchers in re.findall(r"(reviewstream_[a-z0-9_]+)\{([^}]*)\}", expr):
        found[metric] |= set(re.findall(r"(\w+)\s*!?[=~]", matchers))
    for group in re.findall(r"by \(([^)]*)\)", expr):
        for metric in found:
            found[metric] |= {g.strip() for g in group.split(",")}
    return found


@pytest.mark.parametrize("rule", rules(AlarmThresholds()), ids=lambda r: r.alert)
def test_every_rule_names_metrics_and_labels_the_dataflow_exposes(rule) -> None:
    metrics = exposed()
    for name, labels in referenced(rule.expr).items():
        assert name in metrics, f"{rule.alert}: {name} is not exposed by dataflow/metrics.py"
        assert labels <= metrics[name] | PROMETHEUS_LABELS, f"{rule.alert}: {name} has no label {labels}"
    for label in re.findall(r"\$labels\.(\w+)", rule.summary):
        assert any(label in metrics.get(n, set()) for n in referenced(rule.expr)), (rule.alert, label)


def test_rules_file_is_a_prometheus_rules_file() -> None:
    doc = yaml.safe_load(rules_yaml(AlarmThresholds()))
    (group,) = doc["groups"]
    assert {r["alert"] for r in group["rules"]} == {r.alert for r in rules(AlarmThresholds())}
    assert all(
        r["labels"]["severity"] in ("warning", "critical") and r["annotations"]["summary"] for r in group["rules"]
    )


def test_thresholds_come_from_the_stack() -> None:
    t = AlarmThresholds(consumer_lag_s=120, dead_letter_ratio=0.2, backup_age_s=60)
    by_name = {r.alert: r.expr for r in rules(t)}
    assert by_name["ReviewstreamShardLag"].endswith("> 120000")
    assert by_name["ReviewstreamDeadLetters"].endswith("> 0.2")
    assert by_name["ReviewstreamRecoveryBackupStale"].endswith("> 60")


@needs_promtool
def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(rules_yaml(AlarmThresholds()))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _alert(name: str, labels: dict | None = None, severity: str = "warning") -> dict:
    (rule,) = [r for r in rules(AlarmThresholds()) if r.alert == name]
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: (labels or {})[m.group(1)], rule.summary)
    annotations = {"summary": summary, "runbook": 'docs/DEPLOY.md "Watching it"'}
    return {
        "alertname": name,
        "exp_alerts": [{"exp_labels": {"severity": severity, **(labels or {})}, "exp_annotations": annotations}],
    }


def _quiet(*names: str) -> list[dict]:
    return [{"alertname": n, "exp_alerts": []} for n in names]


POD = f'job="{DATAFLOW_JOB}", pod="reviewstream-dataflow-0"'
HEALTHY = [
    {"series": f"up{{{POD}}}", "values": "1x40"},
    {"series": f'reviewstream_shard_millis_behind_latest{{{POD}, shard="s-0"}}', "values": "2000x40"},
    {"series": f'reviewstream_records_read_total{{{POD}, shard="s-0"}}', "values": "0+100x40"},
    {"series": f'reviewstream_documents_indexed_total{{{POD}, index="processed_reviews"}}', "values": "0+99x40"},
    {"series": f'reviewstream_dead_letters_total{{{POD}, stage="enrich", error_type="x"}}', "values": "0+1x40"},
    {"series": f'reviewstream_bedrock_requests_total{{{POD}, outcome="answered"}}', "values": "0+20x40"},
    {"series": f'reviewstream_bedrock_requests_total{{{POD}, outcome="throttled"}}', "values": "0+1x40"},
    {"series": f"reviewstream_bedrock_throttles_total{{{POD}}}", "values": "0+1x40"},
    {"series": f'reviewstream_recovery_backup_age_seconds{{job="{RECOVERY_JOB}", partition="3"}}', "values": "40x40"},
    {"series": f"reviewstream_epoch_completed_age_seconds{{{POD}}}", "values": "20x40"},
    {"series": f'reviewstream_packing_audits_total{{{POD}, result="agree"}}', "values": "0+1x40"},
    {"series": f'reviewstream_packing_audits_total{{{POD}, result="failed"}}', "values": "0+1x40"},
]
FIRING = [
    {"series": f"up{{{POD}}}", "values": "0x40"},
    {"series": f'reviewstream_shard_millis_behind_latest{{{POD}, shard="s-0"}}', "values": "700000x40"},
    {"series": f'reviewstream_records_read_total{{{POD}, shard="s-0"}}', "values": "0+100x40"},
    {"series": f'reviewstream_dead_letters_total{{{POD}, stage="parse", error_type="x"}}', "values": "0+10x40"},
    {"series": f'reviewstream_bedrock_requests_total{{{POD}, outcome="answered"}}', "values": "0+50x40"},
    {"series": f'reviewstream_bedrock_requests_total{{{POD}, outcome="throttled"}}', "values": "0+40x40"},
    {"series": f'reviewstream_bedrock_requests_total{{{POD}, outcome="timeout"}}', "values": "0+10x40"},
    {"series": f"reviewstream_bedrock_throttles_total{{{POD}}}", "values": "0+40x40"},
    {"series": f'reviewstream_recovery_backup_age_seconds{{job="{RECOVERY_JOB}", partition="3"}}', "values": "1000x40"},
    {"series": f"reviewstream_epoch_completed_age_seconds{{{POD}}}", "values": "400x40"},
    {"series": f'reviewstream_packing_audits_total{{{POD}, result="agree"}}', "values": "0+1x40"},
    {"series": f'reviewstream_packing_audits_total{{{POD}, result="disagree"}}', "values": "0+1x40"},
]


@needs_promtool
def test_promtool_plays_each_alert(tmp_path: Path) -> None:
    names = [r.alert for r in rules(AlarmThresholds())]
    (tmp_path / "rules.yml").write_text(rules_yaml(AlarmThresholds()))
    firing = [
        _alert("ReviewstreamMetricsMissing", severity="critical"),
        _alert("ReviewstreamShardLag", {"shard": "s-0"}),
        _alert("ReviewstreamNothingIndexed", severity="critical"),
        _alert("ReviewstreamDeadLetters"),
        _alert("ReviewstreamBedrockThrottled"),
        _alert("ReviewstreamBedrockErrors"),
        _alert("ReviewstreamPackingDisagrees"),
        _alert("ReviewstreamRecoveryBackupStale"),
        _alert("ReviewstreamEpochStalled", severity="critical"),
    ]
    assert {f["alertname"] for f in firing} == set(names)
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": series, "alert_rule_test": [{"eval_time": "35m", **e} for e in expected]}
            for series, expected in ((HEALTHY, _quiet(*names)), (FIRING, firing))
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    played = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert played.returncode == 0, played.stdout + played.stderr


def relabel(target: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus' `keep` and `replace` relabelling (anchored regex, `;`-joined sources, $n in replacement)."""
    labels = dict(target)
    for c in configs:
        value = ";".join(labels.get(s, "") for s in c.get("source_labels", []))
        match = re.fullmatch(c.get("regex", "(.*)"), value)
        if c.get("action", "replace") == "keep":
            if not match:
                return None
        elif match:
            labels[c["target_label"]] = match.expand(re.sub(r"\$(\d+)", r"\\g<\1>", c.get("replacement", "$1")))
    return {k: v for k, v in labels.items() if not k.startswith("__meta_")}


def discovered(port: int, port_name: str, annotations: dict[str, str]) -> dict[str, str]:
    target = {
        "__address__": f"10.40.1.23:{port}",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": "reviewstream",
        "__meta_kubernetes_pod_name": "reviewstream-dataflow-0",
        "__meta_kubernetes_pod_container_port_name": port_name,
    }
    for key, value in annotations.items():
        target["__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    return target


def test_scrape_config_finds_the_dataflow_pods_on_their_metrics_port(stack) -> None:
    _, mocks = stack
    pod = mocks.one("kubernetes:apps/v1:StatefulSet").inputs["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: int(p["containerPort"]) for p in container["ports"]}  # the engine sends floats
    doc = yaml.safe_load(scrape_config("reviewstream", "reviewstream-dev-eks"))
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert doc["global"]["scrape_interval"] == "30s"  # the managed collector's minimum
    assert all(
        j["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["reviewstream"]}}]
        for j in jobs.values()
    )
    # Kubernetes discovery gives one target per declared container port: they collapse onto the annotated one.
    targets = [relabel(discovered(p, n, annotations), jobs[DATAFLOW_JOB]["relabel_configs"]) for n, p in ports.items()]
    assert {t["__address__"] for t in targets} == {f"10.40.1.23:{METRICS_PORT}"}
    assert targets[0]["__metrics_path__"] == "/metrics" and targets[0]["pod"] == "reviewstream-dataflow-0"
    assert relabel(discovered(METRICS_PORT, "metrics", {}), jobs[DATAFLOW_JOB]["relabel_configs"]) is None
    recovery = jobs[RECOVERY_JOB]["relabel_configs"]
    assert relabel(discovered(9109, RECOVERY_PORT_NAME, annotations), recovery)["__address__"] == "10.40.1.23:9109"
    # The StatefulSet declares the supervisor's port by that name: exactly one recovery target per pod, on it.
    found = [t for n, p in ports.items() if (t := relabel(discovered(p, n, annotations), recovery)) is not None]
    assert [t["__address__"] for t in found] == ["10.40.1.23:9109"]
