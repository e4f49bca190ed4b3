"""Metrics and logs off the cluster, with AWS's managed pieces (nothing to run or patch ourselves).

Metrics: an Amazon Managed Service for Prometheus workspace and its agentless managed collector
(`aws.amp.Scraper`), whose ENIs sit in the cluster's private subnets with the cluster security group (the nodes'
group, so pods on :9108 are reachable) and which scrapes what infra/alert_rules.py `scrape_config` names. The
collector reads the Kubernetes API as the user `aps-collector-user`, bound to the ClusterRole AWS documents.
With the cluster in API authentication mode AMP creates the collector's access entry itself when the scraper
is created; `prometheusScraperAccessEntry: true` has the stack create it instead (an account where it did not).

Logs: the `amazon-cloudwatch-observability` EKS add-on (its Fluent Bit DaemonSet ships every container's
stdout to CloudWatch Logs; its CloudWatch agent publishes Container Insights, whose restart counts feed the
pod-restart alarm). An EKS add-on rather than our own Fluent Bit: EKS versions it with the cluster like CoreDNS,
and it brings the restart metrics that kube-state-metrics would otherwise be needed for. Its log groups are
created here first, with `containerLogRetentionDays` (Fluent Bit would create them without a retention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.alert_rules import scrape_config
from infra.cluster import Cluster
from infra.iam import AWS_MANAGED, IrsaRole, build_irsa_role, partition_of

CLOUDWATCH_ADDON = "amazon-cloudwatch-observability"
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"
CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-agent"  # the add-on's agent and Fluent Bit run as this account
CLOUDWATCH_POLICY = f"{AWS_MANAGED}/CloudWatchAgentServerPolicy"
# The groups the add-on writes: container stdout, kubelet/runtime, node logs, Container Insights' EMF events.
CONTAINER_LOG_GROUPS = ("application", "dataplane", "host", "performance")
SCRAPER_USER = "aps-collector-user"
SCRAPER_ROLE = "aps-collector-role"
# The scraper's role ARN carries a service-role path that EKS does not accept in a mapping (AMP user guide).
SCRAPER_ROLE_PATH = "role/aws-service-role/scraper.aps.amazonaws.com/"


@dataclass
class Observability:
    workspace_id: pulumi.Output[str]
    workspace_arn: pulumi.Output[str]
    prometheus_endpoint: pulumi.Output[str]
    scraper: aws.amp.Scraper
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    addon: aws.eks.Addon
    agent_role: IrsaRole


def cluster_arn(region: str, account_id: str, cluster_name: str) -> str:
    return f"arn:{partition_of(region)}:eks:{region}:{account_id}:cluster/{cluster_name}"


def mapped_role_arn(scraper_role_arn: str) -> str:
    """`arn:aws:iam::<acct>:role/AWSServiceRoleForAmazonPrometheusScraper_<id>`: the path removed."""
    return scraper_role_arn.replace(SCRAPER_ROLE_PATH, "role/")


def collector_rbac_rules() -> list[dict]:
    """The ClusterRole the AMP user guide gives the managed collector: discovery, node metrics, /metrics."""
    read = ["describe", "get", "list", "watch"]
    return [
        {
            "apiGroups": [""],
            "resources": [
                "nodes",
                "nodes/proxy",
                "nodes/metrics",
                "services",
                "endpoints",
                "pods",
                "ingresses",
                "configmaps",
            ],
            "verbs": read,
        },
        {
            "apiGroups": ["extensions", "networking.k8s.io"],
            "resources": ["ingresses/status", "ingresses"],
            "verbs": read,
        },
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        {"apiGroups": ["metrics.eks.amazonaws.com"], "resources": ["kcm/metrics", "ksh/metrics"], "verbs": ["get"]},
    ]


def build_collector_access(name: str, cluster: Cluster, scraper: aws.amp.Scraper, access_entry: bool) -> None:
    opts = pulumi.ResourceOptions(provider=cluster.provider, depends_on=[cluster.node_group])
    k8s.rbac.v1.ClusterRole(
        f"{name}-aps-collector", metadata={"name": SCRAPER_ROLE}, rules=collector_rbac_rules(), opts=opts
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-aps-collector",
        metadata={"name": f"{SCRAPER_USER}-role-binding"},
        subjects=[{"kind": "User", "name": SCRAPER_USER, "apiGroup": "rbac.authorization.k8s.io"}],
        role_ref={"kind": "ClusterRole", "name": SCRAPER_ROLE, "apiGroup": "rbac.authorization.k8s.io"},
        opts=opts,
    )
    if access_entry:
        aws.eks.AccessEntry(
            f"{name}-aps-collector",
            cluster_name=cluster.name,
            principal_arn=scraper.role_arn.apply(mapped_role_arn),
            type="STANDARD",
            user_name=SCRAPER_USER,
        )


def build_container_logs(
    name: str, cluster: Cluster, oidc: tuple[pulumi.Input[str], pulumi.Input[str]], retention_days: int, tags: dict
) -> tuple[dict[str, aws.cloudwatch.LogGroup], aws.eks.Addon, IrsaRole]:
    groups = {
        kind: aws.cloudwatch.LogGroup(
            f"{name}-containers-{kind}",
            name=f"/aws/containerinsights/{cluster.name}/{kind}",
            retention_in_days=retention_days,
            tags=tags,
        )
        for kind in CONTAINER_LOG_GROUPS
    }
    role = build_irsa_role(
        f"{name}-cloudwatch-agent",
        *oidc,
        CLOUDWATCH_NAMESPACE,
        CLOUDWATCH_SERVICE_ACCOUNT,
        tags,
        managed_policy_arns=[CLOUDWATCH_POLICY],
    )
    addon = aws.eks.Addon(
        f"{name}-{CLOUDWATCH_ADDON}",
        cluster_name=cluster.name,
        addon_name=CLOUDWATCH_ADDON,
        addon_version=aws.eks.get_addon_version_output(
            addon_name=CLOUDWATCH_ADDON, kubernetes_version=cluster.kubernetes_version, most_recent=False
        ).version,
        service_account_role_arn=role.arn,
        configuration_values=pulumi.Output.json_dumps({"containerLogs": {"enabled": True}}),
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="OVERWRITE",
        tags=tags,
        # The groups exist (with their retention) before anything writes to them.
        opts=pulumi.ResourceOptions(depends_on=[cluster.node_group, *groups.values()]),
    )
    return groups, addon, role


def build_observability(
    name: str,
    *,
    cluster: Cluster,
    region: str,
    account_id: str,
    subnet_ids: Sequence[pulumi.Input[str]],
    namespace: str,
    log_retention_days: int,
    scraper_access_entry: bool,
    tags: dict[str, str],
) -> Observability:
    # The collector tags the workspace it writes to; declaring the tag keeps Pulumi from removing it again.
    workspace = aws.amp.Workspace(f"{name}-amp", alias=name, tags={**tags, "AMPAgentlessScraper": ""})
    scraper = aws.amp.Scraper(
        f"{name}-scraper",
        alias=f"{name}-dataflow",
        source=aws.amp.ScraperSourceArgs(
            eks=aws.amp.ScraperSourceEksArgs(
                cluster_arn=cluster_arn(region, account_id, cluster.name),
                subnet_ids=list(subnet_ids),
                security_group_ids=[cluster.security_group_id],
            )
        ),
        destination=aws.amp.ScraperDestinationArgs(amp=aws.amp.ScraperDestinationAmpArgs(workspace_arn=workspace.arn)),
        scrape_configuration=scrape_config(namespace, cluster.name),
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=[cluster.node_group]),
    )
    build_collector_access(name, cluster, scraper, scraper_access_entry)
    groups, addon, role = build_container_logs(
        name, cluster, (cluster.oidc_provider_arn, cluster.oidc_issuer), log_retention_days, tags
    )
    return Observability(
        workspace_id=workspace.id,
        workspace_arn=workspace.arn,
        prometheus_endpoint=workspace.prometheus_endpoint,
        scraper=scraper,
        log_groups=groups,
        addon=addon,
        agent_role=role,
    )
