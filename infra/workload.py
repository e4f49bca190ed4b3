"""The dataflow on Kubernetes: restricted namespace, IRSA service account, headless Service, StatefulSet, PDB.

One Bytewax process per pod. The image's entrypoint derives the process id from the pod ordinal and the
peer addresses from BYTEWAX_REPLICAS and the headless Service DNS, so scaling is one number. Each pod
keeps its recovery partitions on its own volume (a volumeClaimTemplate); together the pods hold the full
set, which is what Bytewax needs to resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

APP = "reviewstream-dataflow"
BYTEWAX_PORT = 2101
METRICS_PORT = 9108
RECOVERY_MOUNT = "/var/recovery"
SNAPSHOT_INTERVAL_S = 30
BACKUP_INTERVAL_S = 300
RUN_AS = 10001
HEARTBEAT_FILE = "/tmp/heartbeat"
# Longer than any legitimate pause of a worker's loop (a sink backoff, a Bedrock timeout, the access
# grace period at start); shorter than a human would take to notice.
HEARTBEAT_MAX_AGE_S = 300
STARTUP_PROBES = 40  # x 30 s: 20 minutes for the first beat
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "reviewstream"}


@dataclass(frozen=True)
class DataflowSettings:
    """Values handed to the dataflow as environment (names as read by dataflow/settings.py)."""

    region: str
    stream_name: pulumi.Input[str]
    start_position: str
    model_id: str
    max_concurrency: int
    reviews_per_request: int
    timeout_s: float
    max_attempts: int
    opensearch_endpoint: pulumi.Input[str]
    index: str
    dlq_index: str


@dataclass
class Workload:
    namespace: pulumi.Output[str]
    service_account: str
    statefulset_name: str
    image: pulumi.Output[str]


def recovery_directory(name: str) -> str:
    return f"{RECOVERY_MOUNT}/{name}"


def init_recovery_script(directory: str, partitions: int) -> str:
    """Create the recovery partitions once, keeping on this pod those with index % replicas == ordinal.

    `python -m bytewax.recovery` fails on a directory that already holds partitions, and a restarted pod
    must keep its state, so a marker file records that this volume was initialised.
    """
    return f"""set -eu
dir={directory}
if [ -f "$dir/.initialized" ]; then echo "recovery partitions already present in $dir"; exit 0; fi
ordinal="${{HOSTNAME##*-}}"
replicas="${{BYTEWAX_REPLICAS:-1}}"
staging="$(mktemp -d {RECOVERY_MOUNT}/.staging.XXXXXX)"
python -m bytewax.recovery "$staging" {partitions}
mkdir -p "$dir"
i=0
while [ "$i" -lt {partitions} ]; do
  if [ $((i % replicas)) -eq "$ordinal" ]; then mv "$staging/part-$i.sqlite3" "$dir/"; fi
  i=$((i + 1))
done
rm -rf "$staging"
touch "$dir/.initialized"
echo "created partitions of {partitions} for ordinal $ordinal in $dir"
"""


def dataflow_env(s: DataflowSettings, workers_per_process: int, replicas: int, service: str) -> list[dict]:
    """Container environment as plain dicts (Kubernetes EnvVar shape), checked by the tests."""
    plain: dict[str, pulumi.Input[str]] = {
        "AWS_REGION": s.region,
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "KINESIS_STREAM_NAME": s.stream_name,
        "KINESIS_START_POSITION": s.start_position,
        "BEDROCK_MODEL_ID": s.model_id,
        "BEDROCK_MAX_CONCURRENCY": str(s.max_concurrency),
        "BEDROCK_REVIEWS_PER_REQUEST": str(s.reviews_per_request),
        "BEDROCK_TIMEOUT_S": str(s.timeout_s),
        "BEDROCK_MAX_ATTEMPTS": str(s.max_attempts),
        "OPENSEARCH_URL": pulumi.Output.from_input(s.opensearch_endpoint).apply(lambda e: f"https://{e}"),
        "OPENSEARCH_AUTH": "sigv4",
        "OPENSEARCH_INDEX": s.index,
        "OPENSEARCH_DLQ_INDEX": s.dlq_index,
        "METRICS_PORT": str(METRICS_PORT),
        "HEARTBEAT_FILE": HEARTBEAT_FILE,
        "BYTEWAX_WORKERS_PER_PROCESS": str(workers_per_process),
        "BYTEWAX_REPLICAS": str(replicas),
        "BYTEWAX_SERVICE": service,
        "BYTEWAX_PORT": str(BYTEWAX_PORT),
        "HOME": "/tmp",
        "PYTHONUNBUFFERED": "1",
    }
    env: list[dict] = [{"name": k, "value": v} for k, v in plain.items()]
    env.append({"name": "BYTEWAX_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    env.append({"name": "BYTEWAX_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    return env


def pod_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def liveness_command(max_age_s: int = HEARTBEAT_MAX_AGE_S) -> list[str]:
    """Exec probe: fails when some worker has not polled its source for `max_age_s` (a stuck worker)."""
    return ["python", "-m", "dataflow.heartbeat", HEARTBEAT_FILE, str(max_age_s)]


def build_namespace(name: str, provider: k8s.Provider, namespace: str) -> k8s.core.v1.Namespace:
    """The namespace, restricted by Pod Security admission; everything of the stack on Kubernetes lives here."""
    return k8s.core.v1.Namespace(
        f"{name}-ns",
        metadata={
            "name": namespace,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted", **LABELS},
        },
        opts=pulumi.ResourceOptions(provider=provider),
    )


def container_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_workload(
    name: str,
    *,
    provider: k8s.Provider,
    namespace: k8s.core.v1.Namespace,
    namespace_name: str,
    service_account: str,
    role_arn: pulumi.Input[str],
    image: pulumi.Output[str],
    replicas: int,
    workers_per_process: int,
    recovery_partitions: int,
    recovery_volume_size_gb: int,
    storage_class: str,
    settings: DataflowSettings,
    depends_on: list[pulumi.Resource],
) -> Workload:
    """`depends_on`: what must be done before any pod starts (the OpenSearch access mapping Job)."""
    labels = LABELS
    ns_opts = pulumi.ResourceOptions(provider=provider, depends_on=[namespace])
    k8s.core.v1.ServiceAccount(
        f"{name}-sa",
        metadata={
            "name": service_account,
            "namespace": namespace_name,
            "labels": labels,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        automount_service_account_token=False,  # IRSA injects its own projected token; no Kubernetes API use
        opts=ns_opts,
    )
    service = k8s.core.v1.Service(
        f"{name}-svc",
        metadata={"name": APP, "namespace": namespace_name, "labels": labels},
        spec={
            "clusterIP": "None",
            # Peers must resolve each other before any is ready: the Bytewax cluster forms first.
            "publishNotReadyAddresses": True,
            "selector": labels,
            "ports": [
                {"name": "bytewax", "port": BYTEWAX_PORT, "targetPort": BYTEWAX_PORT},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT},
            ],
        },
        opts=ns_opts,
    )
    directory = recovery_directory(APP)
    security = container_security_context()
    mounts = [{"name": "recovery", "mountPath": RECOVERY_MOUNT}, {"name": "tmp", "mountPath": "/tmp"}]
    env = dataflow_env(settings, workers_per_process, replicas, APP)
    probe = {"tcpSocket": {"port": "metrics"}}
    liveness = {"exec": {"command": liveness_command()}}
    k8s.apps.v1.StatefulSet(
        f"{name}-dataflow",
        metadata={"name": APP, "namespace": namespace_name, "labels": labels},
        spec={
            "serviceName": APP,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",  # every process must be up for the cluster to start
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": service_account,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": pod_security_context(),
                    "initContainers": [
                        {
                            "name": "init-recovery",
                            "image": image,
                            "command": ["sh", "-c", init_recovery_script(directory, recovery_partitions)],
                            "env": [{"name": "BYTEWAX_REPLICAS", "value": str(replicas)}],
                            "securityContext": security,
                            "volumeMounts": mounts,
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                        }
                    ],
                    "containers": [
                        {
                            "name": "dataflow",
                            "image": image,
                            "command": ["/app/entrypoint.sh"],
                            "args": [
                                "-r",
                                directory,
                                "-s",
                                str(SNAPSHOT_INTERVAL_S),
                                "-b",
                                str(BACKUP_INTERVAL_S),
                            ],
                            "env": env,
                            "ports": [
                                {"name": "bytewax", "containerPort": BYTEWAX_PORT},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "2", "memory": "2Gi"},
                            },
                            # The first beat may wait for OpenSearch (index templates, the access grace period
                            # OPENSEARCH_AUTH_GRACE_S): liveness only starts once every worker polls.
                            "startupProbe": {
                                **liveness,
                                "periodSeconds": 30,
                                "timeoutSeconds": 10,
                                "failureThreshold": STARTUP_PROBES,
                            },
                            # Stuck, not merely slow: a worker that stopped polling its source.
                            "livenessProbe": {
                                **liveness,
                                "periodSeconds": 30,
                                "timeoutSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {**probe, "initialDelaySeconds": 10, "periodSeconds": 10},
                            "securityContext": security,
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "recovery", "labels": labels},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": storage_class,
                        "resources": {"requests": {"storage": f"{recovery_volume_size_gb}Gi"}},
                    },
                }
            ],
        },
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace, service, *depends_on]),
    )
    k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata={"name": APP, "namespace": namespace_name, "labels": labels},
        spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        opts=ns_opts,
    )
    return Workload(
        namespace=pulumi.Output.from_input(namespace_name),
        service_account=service_account,
        statefulset_name=APP,
        image=image,
    )
