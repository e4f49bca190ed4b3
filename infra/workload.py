"""The dataflow on Kubernetes: restricted namespace, IRSA service account, headless Service, StatefulSet, PDB.

One Bytewax process per pod. The image's entrypoint derives the process id from the pod ordinal and the
peer addresses from BYTEWAX_REPLICAS and the headless Service DNS. Recovery state follows the cluster: the
partitions' durable copy is in S3 (infra/recovery_store.py), each pod's init container fetches the partitions
its ordinal owns for the current size into an emptyDir, and the main process stores them after every snapshot
(dataflow/recovery). So no state is pinned to a pod, a volume or a zone, and scaling is one number.

Day 2: a Bytewax cluster runs one dataflow on every process, so a new pod template must never meet the old
one. The StatefulSet's update strategy is OnDelete (the controller never rolls pods one by one), and Pulumi
replaces the whole StatefulSet whenever its spec changes (image, setting, replicas): the old pods stop and
store their state, then the new ones start together. Readiness is the heartbeat: every worker polled its
source in the last minute, which happens only once the cluster formed and recovery loaded.
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
BACKUP_INTERVAL_S = 1800  # Bytewax's -b: how stale a stored copy may get (failed backups) and still resume
RUN_AS = 10001
HEARTBEAT_FILE = "/tmp/heartbeat"
# Longer than any legitimate pause of a worker's loop (a sink backoff, a Bedrock timeout, the access
# grace period at start); shorter than a human would take to notice.
HEARTBEAT_MAX_AGE_S = 300
READY_MAX_AGE_S = 60  # ready: every worker polled its source within a minute (the cluster formed and runs)
READY_BACKUP_MAX_AGE_S = 600  # ... and every partition's stored copy was current within 10 minutes (< -b)
RECOVERY_METRICS_PORT = 9109  # the recovery supervisor's /metrics (the backups' age)
STARTUP_PROBES = 40  # x 30 s: 20 minutes for the first beat
RECOVERY_SIZE_LIMIT = "1Gi"  # the partitions' working copy (an emptyDir): a few MB per partition
ZONE_KEY = "topology.kubernetes.io/zone"
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
    enrichment_generation: int = 0
    # What the backfill (`python -m bytewax.run dataflow.backfill`, run in a pod of this image) reads: where job
    # files go and the role Bedrock assumes (infra/batch.py).
    backfill_job_url: pulumi.Input[str] = ""
    backfill_role_arn: pulumi.Input[str] = ""


@dataclass
class Workload:
    namespace: pulumi.Output[str]
    service_account: str
    statefulset_name: str
    image: pulumi.Output[str]


def recovery_directory(name: str) -> str:
    return f"{RECOVERY_MOUNT}/{name}"


# The init container: this pod's partitions for the current cluster size, from the recovery store.
INIT_COMMAND = ["python", "-m", "dataflow.recovery", "restore"]


def recovery_env(store_url: pulumi.Input[str], partitions: int, directory: str) -> dict[str, pulumi.Input[str]]:
    """What dataflow/recovery reads (dataflow/settings.py RecoverySettings), for the init and main containers."""
    return {
        "RECOVERY_STORE_URL": store_url,
        "RECOVERY_DIR": directory,
        "RECOVERY_PARTITIONS": str(partitions),
        "RECOVERY_SNAPSHOT_INTERVAL_S": str(SNAPSHOT_INTERVAL_S),
        "RECOVERY_RETAIN_S": str(BACKUP_INTERVAL_S),
        "RECOVERY_BACKUP_MAX_AGE_S": str(READY_BACKUP_MAX_AGE_S),
        "RECOVERY_METRICS_PORT": str(RECOVERY_METRICS_PORT),
    }


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
        "ENRICHMENT_GENERATION": str(s.enrichment_generation),
        "BACKFILL_JOB_URL": s.backfill_job_url,
        "BACKFILL_ROLE_ARN": s.backfill_role_arn,
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


def spread_constraints() -> list[dict]:
    """Pods spread over zones, then nodes; preferred, not required: with no state pinned to a zone, a pod whose
    zone is gone or full must still start elsewhere."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": LABELS},
        }
        for key in (ZONE_KEY, "kubernetes.io/hostname")
    ]


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
    recovery_store_url: pulumi.Input[str],
    settings: DataflowSettings,
    depends_on: list[pulumi.Resource],
) -> Workload:
    """`depends_on`: what must be done before any pod starts (the OpenSearch access mapping Job, the role's
    policy, the recovery bucket)."""
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
    store_env = [
        {"name": k, "value": v} for k, v in recovery_env(recovery_store_url, recovery_partitions, directory).items()
    ]
    env = [*dataflow_env(settings, workers_per_process, replicas, APP), *store_env]
    init_env = [
        *store_env,
        {"name": "AWS_REGION", "value": settings.region},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
        {"name": "BYTEWAX_REPLICAS", "value": str(replicas)},
        {"name": "BYTEWAX_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "HOME", "value": "/tmp"},
    ]
    liveness = {"exec": {"command": liveness_command()}}
    readiness = {"exec": {"command": [*liveness_command(READY_MAX_AGE_S), str(READY_BACKUP_MAX_AGE_S)]}}
    k8s.apps.v1.StatefulSet(
        f"{name}-dataflow",
        metadata={
            "name": APP,
            "namespace": namespace_name,
            "labels": labels,
            # Pulumi's delete waits until the pods are gone, so new pods never meet old ones.
            "annotations": {"pulumi.com/deletionPropagationPolicy": "foreground"},
        },
        spec={
            "serviceName": APP,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",  # every process must be up for the cluster to start
            # Never a rolling update: old and new pods would form one cluster; a template change replaces the
            # StatefulSet instead (opts below), and `kubectl delete pods -l ...` restarts all pods at once.
            "updateStrategy": {"type": "OnDelete"},
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
                    "topologySpreadConstraints": spread_constraints(),
                    "initContainers": [
                        {
                            "name": "init-recovery",
                            "image": image,
                            "command": INIT_COMMAND,
                            "env": init_env,
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
                            # The recovery supervisor appends -r/-s/-b from RECOVERY_* (dataflow/settings.py).
                            "command": ["/app/entrypoint.sh"],
                            "env": env,
                            "ports": [
                                {"name": "bytewax", "containerPort": BYTEWAX_PORT},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                                {"name": "recovery-metrics", "containerPort": RECOVERY_METRICS_PORT},
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
                            # Ready: the cluster formed, recovery loaded and every worker polls its source. A
                            # restarted container starts without a beat (the supervisor removes the file).
                            "readinessProbe": {
                                **readiness,
                                "periodSeconds": 10,
                                "timeoutSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "securityContext": security,
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        # A working copy: it outlives a container restart, the store holds the rest.
                        {"name": "recovery", "emptyDir": {"sizeLimit": RECOVERY_SIZE_LIMIT}},
                    ],
                },
            },
        },
        opts=pulumi.ResourceOptions(
            provider=provider,
            depends_on=[namespace, service, *depends_on],
            # Any change of the spec (template or replicas) replaces the StatefulSet: delete first (the old pods
            # stop and store their partitions; foreground deletion waits for them), then create the new one.
            replace_on_changes=["spec"],
            delete_before_replace=True,
        ),
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
