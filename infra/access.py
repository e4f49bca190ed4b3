"""OpenSearch fine-grained access control as an ordered deploy step.

A Kubernetes Job, run with a dedicated security-admin IRSA role (the domain's master user, and nothing
else uses it), applies the security plan: the dataflow role may write its two indices; the bastion role
(behind the Dashboards proxy) may read them and use Dashboards. Pulumi waits for the Job to complete and
the dataflow's StatefulSet depends on it, so the first pods start with their writes already admitted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from infra.workload import container_security_context, pod_security_context

SCRIPT = Path(__file__).parent / "assets" / "map_access.py"
JOB_NAME = "reviewstream-access-mapping"
ADMIN_SERVICE_ACCOUNT = "search-admin"
WRITER_ROLE = "reviewstream_writer"
READER_ROLE = "reviewstream_reader"
DASHBOARDS_ROLE = "kibana_user"  # OpenSearch's predefined role for using Dashboards (saved objects, tenants)
JOB_DEADLINE_S = 1800
PLAN_DEADLINE_S = 1200
SECURITY_API = "/_plugins/_security/api"


def security_plan(writer_role_arn: str, reader_role_arn: str, index: str, dlq_index: str) -> list[dict]:
    """The security API calls, in order: roles first, then the mappings that name them."""
    patterns = [f"{index}*", f"{dlq_index}*"]
    writer = {
        "cluster_permissions": [
            "cluster_monitor",
            "cluster_composite_ops",
            "indices:admin/index_template/*",
            "indices:admin/template/*",
        ],
        "index_permissions": [{"index_patterns": patterns, "allowed_actions": ["crud", "create_index", "manage"]}],
    }
    reader = {
        "cluster_permissions": ["cluster_composite_ops_ro"],
        "index_permissions": [{"index_patterns": patterns, "allowed_actions": ["read", "indices_monitor"]}],
    }
    return [
        {"method": "PUT", "path": f"{SECURITY_API}/roles/{WRITER_ROLE}", "body": writer},
        {"method": "PUT", "path": f"{SECURITY_API}/roles/{READER_ROLE}", "body": reader},
        {
            "method": "PUT",
            "path": f"{SECURITY_API}/rolesmapping/{WRITER_ROLE}",
            "body": {"backend_roles": [writer_role_arn]},
        },
        {
            "method": "PUT",
            "path": f"{SECURITY_API}/rolesmapping/{READER_ROLE}",
            "body": {"backend_roles": [reader_role_arn]},
        },
        {
            "method": "PUT",
            "path": f"{SECURITY_API}/rolesmapping/{DASHBOARDS_ROLE}",
            "body": {"backend_roles": [reader_role_arn]},
        },
    ]


@dataclass
class AccessMapping:
    job: k8s.batch.v1.Job
    service_account: str


def build_access_mapping(
    name: str,
    *,
    provider: k8s.Provider,
    namespace: k8s.core.v1.Namespace,
    namespace_name: str,
    admin_role_arn: pulumi.Input[str],
    image: pulumi.Input[str],
    opensearch_endpoint: pulumi.Input[str],
    region: str,
    writer_role_arn: pulumi.Input[str],
    reader_role_arn: pulumi.Input[str],
    index: str,
    dlq_index: str,
    depends_on: Sequence[pulumi.Resource],
) -> AccessMapping:
    labels = {"app.kubernetes.io/name": JOB_NAME, "app.kubernetes.io/part-of": "reviewstream"}
    opts = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])
    account = k8s.core.v1.ServiceAccount(
        f"{name}-search-admin-sa",
        metadata={
            "name": ADMIN_SERVICE_ACCOUNT,
            "namespace": namespace_name,
            "labels": labels,
            "annotations": {"eks.amazonaws.com/role-arn": admin_role_arn},
        },
        automount_service_account_token=False,
        opts=opts,
    )
    plan = pulumi.Output.all(writer_role_arn, reader_role_arn).apply(
        lambda a: json.dumps(security_plan(a[0], a[1], index, dlq_index), indent=1)
    )
    # Auto-named: a new plan is a new ConfigMap, hence a new Job spec, hence a re-run.
    config = k8s.core.v1.ConfigMap(
        f"{name}-access-plan",
        metadata={"namespace": namespace_name, "labels": labels},
        data={"map_access.py": SCRIPT.read_text(), "plan.json": plan},
        opts=opts,
    )
    env = [
        {
            "name": "OPENSEARCH_URL",
            "value": pulumi.Output.from_input(opensearch_endpoint).apply(lambda e: f"https://{e}"),
        },
        {"name": "AWS_REGION", "value": region},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
        {"name": "ACCESS_PLAN", "value": "/opt/access/plan.json"},
        {"name": "ACCESS_DEADLINE_S", "value": str(PLAN_DEADLINE_S)},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    job = k8s.batch.v1.Job(
        f"{name}-access-mapping",
        metadata={"name": JOB_NAME, "namespace": namespace_name, "labels": labels},
        spec={
            "backoffLimit": 2,
            "activeDeadlineSeconds": JOB_DEADLINE_S,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": ADMIN_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [
                        {
                            "name": "map-access",
                            "image": image,
                            "command": ["python", "/opt/access/map_access.py"],
                            "env": env,
                            "securityContext": container_security_context(),
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "volumeMounts": [
                                {"name": "access", "mountPath": "/opt/access", "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "access", "configMap": {"name": config.metadata.name}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                    ],
                },
            },
        },
        # Pulumi waits for the Job to complete; the domain and the nodes may still be settling.
        opts=pulumi.ResourceOptions(
            provider=provider,
            depends_on=[namespace, account, *depends_on],
            custom_timeouts=pulumi.CustomTimeouts(create="35m", update="35m"),
        ),
    )
    return AccessMapping(job=job, service_account=ADMIN_SERVICE_ACCOUNT)
