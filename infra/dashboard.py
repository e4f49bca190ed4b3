"""The operator's dashboard: one CloudWatch dashboard, created and deleted with the stack.

CloudWatch rather than a Grafana dashboard: it needs no Managed Grafana workspace (nor IAM Identity Center
for its users), costs $3 a month, and its alarm widget shows every CloudWatch alarm's state next to the
graphs. What it shows are the services' own metrics: Kinesis lag and throughput, Bedrock invocations,
throttles, errors, tokens and the cost per hour they make (priced like the dataflow's cost metric), OpenSearch
health, and the pods' restarts and CPU from Container Insights, plus the dataflow's warnings and errors from
its logs. The dataflow's own metrics (dead letters by stage, the Bedrock window, per-shard lag) are in AMP:
their alerts reach the same topic, and the text widget gives the query to read them (docs/DEPLOY.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from dataflow.enrich.pricing import price_per_mtok
from infra.alarms import restarts_query

WIDTH = 24


def dashboard_body(
    *,
    region: str,
    account_id: str,
    stream_name: str,
    domain_name: str,
    model_id: str,
    cluster_name: str,
    namespace: str,
    alarm_arns: Sequence[str],
    prometheus_endpoint: str,
) -> dict:
    """The dashboard as CloudWatch's JSON; pure, so the tests read it."""
    price_in, price_out = price_per_mtok(model_id)
    kinesis = ("AWS/Kinesis",)
    es = ("AWS/ES",)
    es_dims = ("DomainName", domain_name, "ClientId", account_id)
    bedrock = ("AWS/Bedrock",)
    model = ("ModelId", model_id)

    def graph(title: str, metrics: list, *, stat: str = "Sum", period: int = 300, width: int = 8) -> dict:
        return {
            "type": "metric",
            "width": width,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "view": "timeSeries",
                "stat": stat,
                "period": period,
                "metrics": metrics,
            },
        }

    pods = f"SELECT {{}}({{}}) FROM SCHEMA(ContainerInsights, ClusterName, Namespace, PodName) WHERE ClusterName = '{cluster_name}' AND Namespace = '{namespace}' GROUP BY PodName"  # noqa: E501
    query = f"{prometheus_endpoint}api/v1/query"
    widgets = [
        {"type": "alarm", "width": WIDTH, "height": 3, "properties": {"title": "Alarms", "alarms": list(alarm_arns)}},
        graph(
            "Lag: oldest record read (ms)",
            [[*kinesis, "GetRecords.IteratorAgeMilliseconds", "StreamName", stream_name]],
            stat="Maximum",
            period=60,
        ),
        graph(
            "Throughput: records in, read; documents indexed",
            [
                [*kinesis, "IncomingRecords", "StreamName", stream_name, {"label": "records in"}],
                [*kinesis, "GetRecords.Records", "StreamName", stream_name, {"label": "records read"}],
                [*es, "IndexingRate", *es_dims, {"label": "indexing rate (per node, avg)", "stat": "Average"}],
            ],
        ),
        graph(
            "Bedrock: invocations, throttles, errors",
            [
                [*bedrock, "Invocations", *model],
                [*bedrock, "InvocationThrottles", *model],
                [*bedrock, "InvocationClientErrors", *model],
                [*bedrock, "InvocationServerErrors", *model],
            ],
        ),
        graph(
            "Bedrock: cost per hour (USD, from tokens)",
            [
                [*bedrock, "InputTokenCount", *model, {"id": "tin", "visible": False}],
                [*bedrock, "OutputTokenCount", *model, {"id": "tout", "visible": False}],
                [{"expression": f"(tin * {price_in} + tout * {price_out}) / 1000000", "label": "USD per hour"}],
            ],
            period=3600,
        ),
        graph(
            "Bedrock: latency (ms)",
            [[*bedrock, "InvocationLatency", *model, {"stat": "p90"}], [*bedrock, "InvocationLatency", *model]],
            stat="Average",
        ),
        graph(
            "OpenSearch: cluster status (1 = red / yellow)",
            [[*es, "ClusterStatus.red", *es_dims], [*es, "ClusterStatus.yellow", *es_dims]],
            stat="Maximum",
            period=60,
        ),
        graph("OpenSearch: free storage (MB, smallest node)", [[*es, "FreeStorageSpace", *es_dims]], stat="Minimum"),
        graph("OpenSearch: JVM memory pressure (%)", [[*es, "JVMMemoryPressure", *es_dims]], stat="Maximum"),
        graph(
            "Pods: container restarts",
            [[{"expression": restarts_query(cluster_name, namespace), "label": "restarts"}]],
            period=900,
        ),
        graph(
            "Pods: CPU (% of the node)",
            [[{"expression": pods.format("AVG", "pod_cpu_utilization"), "label": "cpu"}]],
            stat="Average",
            period=60,
        ),
        {
            "type": "log",
            "width": 16,
            "height": 6,
            "properties": {
                "title": "Dataflow warnings and errors",
                "region": region,
                "view": "table",
                "query": (
                    f"SOURCE '/aws/containerinsights/{cluster_name}/application' | fields @timestamp, "
                    f"kubernetes.pod_name, log | filter kubernetes.namespace_name = '{namespace}' "
                    "and log like /level=(WARNING|ERROR|CRITICAL)/ | sort @timestamp desc | limit 50"
                ),
            },
        },
        {
            "type": "text",
            "width": 8,
            "height": 6,
            "properties": {
                "markdown": (
                    "**The dataflow's own metrics are in Amazon Managed Service for Prometheus** (dead letters, "
                    "the Bedrock window, per-shard lag, epochs, backups); their alerts reach the same topic. "
                    f"Query: `awscurl --service aps --region {region} '{query}?query=...'` "
                    '(docs/DEPLOY.md "Watching it").'
                )
            },
        },
    ]
    return {"widgets": widgets}


def build_dashboard(
    name: str,
    *,
    region: str,
    account_id: str,
    stream_name: pulumi.Input[str],
    domain_name: pulumi.Input[str],
    model_id: str,
    cluster_name: str,
    namespace: str,
    alarm_arns: Sequence[pulumi.Input[str]],
    prometheus_endpoint: pulumi.Input[str],
) -> aws.cloudwatch.Dashboard:
    body = pulumi.Output.all(stream_name, domain_name, prometheus_endpoint, *alarm_arns).apply(
        lambda a: json.dumps(
            dashboard_body(
                region=region,
                account_id=account_id,
                stream_name=a[0],
                domain_name=a[1],
                model_id=model_id,
                cluster_name=cluster_name,
                namespace=namespace,
                alarm_arns=a[3:],
                prometheus_endpoint=a[2],
            )
        )
    )
    return aws.cloudwatch.Dashboard(f"{name}-dashboard", dashboard_name=name, dashboard_body=body)
