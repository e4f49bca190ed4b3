"""Alarms that reach a person: one SNS topic (optionally mailed to `alarmEmail`), fed by both alarm engines.

- AMP rules (infra/alert_rules.py) for what the dataflow measures, routed by AMP's alert manager to the topic.
- CloudWatch alarms for what AWS services publish: Kinesis' iterator age and unread records, OpenSearch's
  health, storage and JVM pressure, and Container Insights' container restarts in the dataflow's namespace.

The topic is encrypted with its own rotating key whose policy lets CloudWatch and AMP use it (neither can
publish to a topic under the AWS-managed `aws/sns` key); the topic policy admits exactly this account's
alarms and this workspace (confused-deputy conditions, as the AMP and CloudWatch guides give them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.alert_rules import alertmanager_yaml, rules_yaml
from infra.config import AlarmThresholds
from infra.iam import partition_of

RESTART_WINDOW_S = 900


@dataclass
class Alarms:
    topic_arn: pulumi.Output[str]
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    subscription: aws.sns.TopicSubscription | None


def topic_key_policy(account_id: str, region: str) -> dict:
    root = f"arn:{partition_of(region)}:iam::{account_id}:root"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
            {
                "Sid": "AlarmPublishers",
                "Effect": "Allow",
                "Principal": {"Service": ["cloudwatch.amazonaws.com", "aps.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ],
    }


def topic_policy(topic_arn: str, workspace_arn: str, account_id: str, region: str) -> dict:
    alarms = f"arn:{partition_of(region)}:cloudwatch:{region}:{account_id}:alarm:*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudWatchAlarms",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"ArnLike": {"aws:SourceArn": alarms}, "StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                "Sid": "PrometheusAlerts",
                "Effect": "Allow",
                "Principal": {"Service": "aps.amazonaws.com"},
                "Action": ["sns:Publish", "sns:GetTopicAttributes"],
                "Resource": topic_arn,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": workspace_arn},
                    "StringEquals": {"aws:SourceAccount": account_id},
                },
            },
        ],
    }


def restarts_query(cluster_name: str, namespace: str) -> str:
    """Container Insights names a StatefulSet's pods one by one (PodName = the pod's name): a Metrics Insights
    query sums them over the namespace, so the alarm follows any replica count."""
    return (
        "SELECT SUM(pod_number_of_container_restarts) FROM SCHEMA(ContainerInsights, ClusterName, Namespace, PodName) "
        f"WHERE ClusterName = '{cluster_name}' AND Namespace = '{namespace}'"
    )


def build_alarms(
    name: str,
    *,
    thresholds: AlarmThresholds,
    region: str,
    account_id: str,
    email: str,
    workspace_id: pulumi.Input[str],
    workspace_arn: pulumi.Input[str],
    stream_name: pulumi.Input[str],
    domain_name: pulumi.Input[str],
    opensearch_instance_count: int,
    opensearch_volume_size_gb: int,
    cluster_name: str,
    namespace: str,
    tags: dict[str, str],
) -> Alarms:
    t = thresholds
    key = aws.kms.Key(
        f"{name}-alarms",
        description=f"{name}: alarm topic encryption",
        enable_key_rotation=True,
        deletion_window_in_days=7,
        policy=json.dumps(topic_key_policy(account_id, region), sort_keys=True),
        tags=tags,
    )
    topic = aws.sns.Topic(f"{name}-alarms", name=f"{name}-alarms", kms_master_key_id=key.arn, tags=tags)
    policy = aws.sns.TopicPolicy(
        f"{name}-alarms",
        arn=topic.arn,
        policy=pulumi.Output.all(topic.arn, workspace_arn).apply(
            lambda a: json.dumps(topic_policy(a[0], a[1], account_id, region), sort_keys=True)
        ),
    )
    subscription = (
        aws.sns.TopicSubscription(f"{name}-alarms-email", topic=topic.arn, protocol="email", endpoint=email)
        if email
        else None
    )

    aws.amp.RuleGroupNamespace(f"{name}-rules", name="reviewstream", workspace_id=workspace_id, data=rules_yaml(t))
    aws.amp.AlertManagerDefinition(
        f"{name}-alertmanager",
        workspace_id=workspace_id,
        definition=topic.arn.apply(lambda arn: alertmanager_yaml(arn, region)),
        opts=pulumi.ResourceOptions(depends_on=[policy]),
    )

    def alarm(key_: str, description: str, **kwargs) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{name}-{key_}",
            name=f"{name}-{key_}",
            alarm_description=f'{description} (docs/DEPLOY.md "Watching it")',
            alarm_actions=[topic.arn],
            ok_actions=[topic.arn],
            tags=tags,
            opts=pulumi.ResourceOptions(depends_on=[policy]),
            **kwargs,
        )

    es = {"DomainName": domain_name, "ClientId": account_id}
    one_node_mb = opensearch_volume_size_gb * 1024
    alarms = {
        "consumer-lag": alarm(
            "consumer-lag",
            f"The oldest record the dataflow reads is more than {t.consumer_lag_s} s old",
            namespace="AWS/Kinesis",
            metric_name="GetRecords.IteratorAgeMilliseconds",
            dimensions={"StreamName": stream_name},
            statistic="Maximum",
            period=60,
            evaluation_periods=5,
            comparison_operator="GreaterThanThreshold",
            threshold=t.consumer_lag_s * 1000,
            treat_missing_data="notBreaching",
        ),
        "records-unread": alarm(
            "records-unread",
            f"Records arrive on the stream but nothing reads them ({t.no_index_minutes} minutes)",
            metric_queries=[
                _kinesis("incoming", "IncomingRecords", stream_name),
                _kinesis("read", "GetRecords.Records", stream_name),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="unread", expression="IF(incoming > 0 AND FILL(read, 0) == 0, 1, 0)", return_data=True
                ),
            ],
            evaluation_periods=t.no_index_minutes // 5 or 1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            treat_missing_data="notBreaching",
        ),
        "opensearch-red": alarm(
            "opensearch-red",
            "A primary shard is unassigned: some documents cannot be indexed or found",
            **_es("ClusterStatus.red", es, "Maximum", 1, "GreaterThanOrEqualToThreshold", 1),
        ),
        "opensearch-storage": alarm(
            "opensearch-storage",
            f"A data node has less than {t.opensearch_free_storage_percent}% of its volume free",
            **_es(
                "FreeStorageSpace",
                es,
                "Minimum",
                5,
                "LessThanOrEqualToThreshold",
                one_node_mb * t.opensearch_free_storage_percent / 100,
            ),
        ),
        "opensearch-jvm": alarm(
            "opensearch-jvm",
            f"JVM memory pressure above {t.opensearch_jvm_pressure_percent}% for 15 minutes",
            **_es(
                "JVMMemoryPressure",
                es,
                "Maximum",
                3,
                "GreaterThanOrEqualToThreshold",
                t.opensearch_jvm_pressure_percent,
            ),
        ),
        "pod-restarts": alarm(
            "pod-restarts",
            f"More than {t.pod_restarts} container restarts in namespace {namespace} within 15 minutes",
            metric_queries=[
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="restarts",
                    expression=restarts_query(cluster_name, namespace),
                    period=RESTART_WINDOW_S,
                    return_data=True,
                )
            ],
            evaluation_periods=1,
            comparison_operator="GreaterThanThreshold",
            threshold=t.pod_restarts,
            treat_missing_data="notBreaching",
        ),
    }
    if opensearch_instance_count >= 2:  # a single node is always yellow (its replicas have nowhere to go)
        alarms["opensearch-yellow"] = alarm(
            "opensearch-yellow",
            "A replica shard is unassigned for 15 minutes: one more node lost would lose data",
            **_es("ClusterStatus.yellow", es, "Maximum", 3, "GreaterThanOrEqualToThreshold", 1),
        )
    return Alarms(topic_arn=topic.arn, alarms=alarms, subscription=subscription)


def _es(metric: str, dimensions: dict, statistic: str, periods: int, operator: str, threshold: float) -> dict:
    """An AWS/ES alarm over `periods` 5-minute periods (1-minute for red: it is urgent)."""
    return {
        "namespace": "AWS/ES",
        "metric_name": metric,
        "dimensions": dimensions,
        "statistic": statistic,
        "period": 60 if metric == "ClusterStatus.red" else 300,
        "evaluation_periods": periods,
        "comparison_operator": operator,
        "threshold": threshold,
        "treat_missing_data": "missing",
    }


def _kinesis(query_id: str, metric: str, stream_name: pulumi.Input[str]) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=query_id,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace="AWS/Kinesis",
            metric_name=metric,
            dimensions={"StreamName": stream_name},
            period=300,
            stat="Sum",
        ),
        return_data=False,
    )
