"""What the managed collector scrapes and the Prometheus alerting rules AMP evaluates: pure text builders.

Kept free of Pulumi so the tests can hand the same YAML to `promtool` (check config, check rules, test rules)
and compare every metric and label a rule names with what dataflow/metrics.py really exposes.

Signals measured by the dataflow itself are rules here (AMP); signals AWS services publish to CloudWatch
(Kinesis iterator age, OpenSearch health, pod restarts from Container Insights) are CloudWatch alarms
(infra/alarms.py). Both notify the same SNS topic.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import yaml

from infra.config import AlarmThresholds

DATAFLOW_JOB = "reviewstream-dataflow"
RECOVERY_JOB = "reviewstream-recovery"
RECOVERY_PORT_NAME = "recovery-metrics"  # the recovery supervisor's container port (its own /metrics)
SCRAPE_INTERVAL = "30s"  # the managed collector's minimum
RATE_WINDOW = "10m"
# Bedrock outcomes that are failures, not quota (dataflow/enrich/outcomes.py; throttled/unavailable are quota).
BEDROCK_ERROR_OUTCOMES = ("timeout", "transient", "request", "config")


def scrape_config(namespace: str, cluster_name: str) -> str:
    """The collector's Prometheus configuration: the dataflow pods of `namespace` by their `prometheus.io/*`
    annotations (port 9108), and the recovery supervisor by its named container port (9109, where present)."""

    def pod_discovery() -> list[dict]:
        return [{"role": "pod", "namespaces": {"names": [namespace]}}]

    identity = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    dataflow = {
        "job_name": DATAFLOW_JOB,
        "kubernetes_sd_configs": pod_discovery(),
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                "action": "keep",
                "regex": "true",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                "action": "replace",
                "target_label": "__metrics_path__",
                "regex": "(.+)",
            },
            # One target per pod whatever its declared ports: the address gets the annotated port.
            {
                "source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                "action": "replace",
                "regex": r"([^:]+)(?::\d+)?;(\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            *identity,
        ],
    }
    recovery = {
        "job_name": RECOVERY_JOB,
        "kubernetes_sd_configs": pod_discovery(),
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "action": "keep",
                "regex": RECOVERY_PORT_NAME,
            },
            *identity,
        ],
    }
    doc = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "external_labels": {"cluster": cluster_name}},
        "scrape_configs": [dataflow, recovery],
    }
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    for_: str
    summary: str
    severity: str = "warning"


def rules(t: AlarmThresholds) -> list[Rule]:
    """Every alert on the dataflow's own metrics; thresholds from the stack (infra/config.py AlarmThresholds)."""
    w = RATE_WINDOW
    n = f"{t.no_index_minutes}m"
    errors = "|".join(BEDROCK_ERROR_OUTCOMES)
    compared = "agree|disagree"  # a failed audit is no evidence
    return [
        Rule(
            "ReviewstreamMetricsMissing",
            f'absent(up{{job="{DATAFLOW_JOB}"}} == 1)',
            "10m",
            "No dataflow pod answered a scrape for 10 minutes (pods down, or the collector cannot reach them)",
            "critical",
        ),
        Rule(
            "ReviewstreamShardLag",
            f"max by (shard) (reviewstream_shard_millis_behind_latest) > {t.consumer_lag_s * 1000}",
            "5m",
            f"Shard {{{{ $labels.shard }}}} is more than {t.consumer_lag_s} s behind the stream's tip",
        ),
        Rule(
            "ReviewstreamNothingIndexed",
            f"sum(increase(reviewstream_records_read_total[{n}])) > 0"
            f" and (sum(increase(reviewstream_documents_indexed_total[{n}])) or vector(0)) == 0",
            "1m",
            f"Records were read but no document was indexed for {t.no_index_minutes} minutes",
            "critical",
        ),
        Rule(
            "ReviewstreamDeadLetters",
            f"sum(rate(reviewstream_dead_letters_total[{w}])) / sum(rate(reviewstream_records_read_total[{w}]))"
            f" > {t.dead_letter_ratio}",
            "10m",
            f"More than {t.dead_letter_ratio:.0%} of the records read go to the dead-letter index",
        ),
        Rule(
            "ReviewstreamBedrockThrottled",
            f"sum(rate(reviewstream_bedrock_throttles_total[{w}]))"
            f" / sum(rate(reviewstream_bedrock_requests_total[{w}])) > {t.bedrock_throttled_ratio}",
            "15m",
            f"More than {t.bedrock_throttled_ratio:.0%} of Bedrock requests are throttled or unavailable (quota)",
        ),
        Rule(
            "ReviewstreamBedrockErrors",
            f'sum(rate(reviewstream_bedrock_requests_total{{outcome=~"{errors}"}}[{w}]))'
            f" / sum(rate(reviewstream_bedrock_requests_total[{w}])) > {t.bedrock_error_ratio}",
            "10m",
            f"More than {t.bedrock_error_ratio:.0%} of Bedrock requests fail ({errors})",
        ),
        Rule(
            "ReviewstreamPackingDisagrees",
            'sum(increase(reviewstream_packing_audits_total{result="disagree"}[1h]))'
            f' / sum(increase(reviewstream_packing_audits_total{{result=~"{compared}"}}[1h]))'
            f" > {t.packing_disagree_ratio}"
            f' and sum(increase(reviewstream_packing_audits_total{{result=~"{compared}"}}[1h])) >= 10',
            "0m",
            f"More than {t.packing_disagree_ratio:.0%} of the packed answers audited in the last hour disagree with"
            " the answer alone: packing changes answers (the pods stop packing; set bedrockReviewsPerRequest 1)",
        ),
        Rule(
            "ReviewstreamRecoveryBackupStale",
            f"max(reviewstream_recovery_backup_age_seconds) > {t.backup_age_s}",
            "5m",
            f"A recovery partition's copy in S3 is more than {t.backup_age_s} s old: a lost pod would re-read more",
        ),
        Rule(
            "ReviewstreamEpochStalled",
            f"max(reviewstream_epoch_completed_age_seconds) > {t.epoch_age_s}",
            "5m",
            f"The cluster has not completed an epoch (checkpoint) for {t.epoch_age_s} s",
            "critical",
        ),
    ]


def rules_yaml(t: AlarmThresholds) -> str:
    """A Prometheus rules file (what AMP's rule groups namespace takes, and what promtool checks)."""
    group = {
        "name": "reviewstream",
        "rules": [
            {
                "alert": r.alert,
                "expr": r.expr,
                "for": r.for_,
                "labels": {"severity": r.severity},
                "annotations": {"summary": r.summary, "runbook": 'docs/DEPLOY.md "Watching it"'},
            }
            for r in rules(t)
        ],
    }
    return yaml.safe_dump({"groups": [group]}, sort_keys=False, width=1000)


def alertmanager_yaml(topic_arn: str, region: str) -> str:
    """AMP's alert manager definition: every alert to the SNS topic, grouped by alert name."""
    config = {
        "route": {
            "receiver": "sns",
            "group_by": ["alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "sns",
                "sns_configs": [
                    {
                        "topic_arn": topic_arn,
                        "sigv4": {"region": region},
                        "subject": "reviewstream: {{ .CommonLabels.alertname }}",
                        "attributes": {"severity": "{{ .CommonLabels.severity }}"},
                    }
                ],
            }
        ],
    }
    body = yaml.safe_dump(config, sort_keys=False)
    return "alertmanager_config: |\n" + textwrap.indent(body, "  ")
