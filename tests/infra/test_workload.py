"""The dataflow's Kubernetes objects: StatefulSet wiring, security context, and schema validity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from dataflow import heartbeat
from dataflow.settings import load_recovery_settings, load_settings
from infra.versions import DEFAULT_VERSION
from infra.workload import (
    APP,
    HEARTBEAT_FILE,
    INIT_COMMAND,
    METRICS_PORT,
    READY_BACKUP_MAX_AGE_S,
    READY_MAX_AGE_S,
    RECOVERY_MOUNT,
    ZONE_KEY,
    liveness_command,
)
from tests.infra.mocks import ACCOUNT

K8S_VERSION = DEFAULT_VERSION
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/reviewstream-dev/dataflow:0.1.0"


def statefulset(mocks) -> dict:
    return mocks.one("kubernetes:apps/v1:StatefulSet").inputs


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container["env"]}


def test_service_account_carries_the_irsa_role(stack) -> None:
    _, mocks = stack
    sa = mocks.named("kubernetes:core/v1:ServiceAccount", "reviewstream-dev-sa").inputs
    assert sa["metadata"]["name"] == "dataflow"
    assert sa["metadata"]["namespace"] == "reviewstream"
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        f"arn:aws:iam::{ACCOUNT}:role/reviewstream-dev-dataflow"
    )
    pod = statefulset(mocks)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "dataflow"


def test_statefulset_runs_the_dataflow_with_recovery(stack) -> None:
    _, mocks = stack
    spec = statefulset(mocks)["spec"]
    assert spec["replicas"] == 2
    assert spec["serviceName"] == APP
    assert spec["podManagementPolicy"] == "Parallel"
    (container,) = spec["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["command"] == ["/app/entrypoint.sh"]
    assert "args" not in container  # the recovery supervisor appends -r/-s/-b from RECOVERY_*
    recovery = load_recovery_settings({**env_of(container), "BYTEWAX_POD_NAME": f"{APP}-1"})
    assert recovery.bytewax_args() == ["-r", f"{RECOVERY_MOUNT}/{APP}", "-s", "30", "-b", "1800"]
    assert recovery.store_url.startswith("s3://") and recovery.store_url.endswith(f"/{APP}")
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    # Ready means the cluster formed and every worker polls its source, not that a port opened at import, and
    # every partition's stored copy is current enough to resume from (well inside Bytewax's -b).
    readiness = [*liveness_command(READY_MAX_AGE_S), str(READY_BACKUP_MAX_AGE_S)]
    assert container["readinessProbe"]["exec"]["command"] == readiness
    assert recovery.retain_s >= READY_BACKUP_MAX_AGE_S * 2
    assert container["livenessProbe"]["exec"]["command"] == liveness_command()
    startup = container["startupProbe"]
    assert startup["exec"]["command"] == liveness_command()
    # Outlasts the sink's wait for the access mapping (OPENSEARCH_AUTH_GRACE_S, 600 s by default).
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * 600
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == 9108
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_env_names_and_values_match_the_dataflow_settings(stack) -> None:
    _, mocks = stack
    (container,) = statefulset(mocks)["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["AWS_REGION"] == "us-east-1"
    assert env["KINESIS_STREAM_NAME"] == "reviewstream-dev-reviews"
    assert env["KINESIS_START_POSITION"] == "TRIM_HORIZON"
    assert env["BEDROCK_MODEL_ID"] == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert env["OPENSEARCH_URL"] == "https://vpc-reviewstream-dev-search-abc123.us-east-1.es.amazonaws.com"
    assert env["OPENSEARCH_AUTH"] == "sigv4"
    assert env["OPENSEARCH_INDEX"] == "processed_reviews"
    assert env["OPENSEARCH_DLQ_INDEX"] == "processed_reviews_dlq"
    assert env["METRICS_PORT"] == "9108"
    assert env["BYTEWAX_WORKERS_PER_PROCESS"] == "2"
    assert env["BYTEWAX_REPLICAS"] == "2"
    assert env["BYTEWAX_SERVICE"] == APP
    # Not pinned: each start of the dataflow decides from the stream it lists and the -w/-a the entrypoint passes
    # (dataflow/channels/routes.py `auto`), so a reshard or a `kubectl scale` is judged at the next start.
    assert "ENRICH_LOCAL_KEY_TRIES" not in env
    from_field = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert from_field == {"BYTEWAX_NAMESPACE": "metadata.namespace", "BYTEWAX_POD_NAME": "metadata.name"}
    # The dataflow's own settings loader accepts every value we hand it.
    settings = load_settings({k: v for k, v in env.items() if v is not None})
    assert settings.opensearch_auth == "sigv4"
    assert settings.bedrock_reviews_per_request == 1
    assert settings.metrics_port == METRICS_PORT
    assert settings.enrich_local_key_tries is None


def test_security_context_is_restricted(stack) -> None:
    _, mocks = stack
    pod = statefulset(mocks)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == 10001
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"recovery": RECOVERY_MOUNT, "tmp": "/tmp"}
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    ns = mocks.one("kubernetes:core/v1:Namespace").inputs
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_recovery_lives_in_the_store_not_on_a_zonal_volume(stack) -> None:
    _, mocks = stack
    spec = statefulset(mocks)["spec"]
    assert "volumeClaimTemplates" not in spec  # nothing pins a pod to a zone
    pod = spec["template"]["spec"]
    assert {"name": "recovery", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]
    (init,) = pod["initContainers"]
    assert init["image"] == IMAGE and init["command"] == INIT_COMMAND
    env = env_of(init)
    from_field = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in init["env"] if "valueFrom" in e}
    assert from_field == {"BYTEWAX_POD_NAME": "metadata.name"}
    settings = load_recovery_settings({**{k: v for k, v in env.items() if v}, "BYTEWAX_POD_NAME": f"{APP}-1"})
    assert (settings.partitions, settings.replicas, settings.ordinal) == (8, 2, 1)
    assert settings.directory == f"{RECOVERY_MOUNT}/{APP}"
    (container,) = pod["containers"]
    main = env_of(container)
    assert {k: main[k] for k in env if k.startswith("RECOVERY_")} == {
        k: v for k, v in env.items() if k.startswith("RECOVERY_")
    }


def test_a_template_change_replaces_every_pod_at_once(stack) -> None:
    """No rolling update mixes two templates in one Bytewax cluster: OnDelete, and Pulumi replaces the
    StatefulSet (delete first, waiting for its pods) whenever its spec changes, replicas included."""
    _, mocks = stack
    sts = statefulset(mocks)
    assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
    opts = mocks.options[("kubernetes:apps/v1:StatefulSet", "reviewstream-dev-dataflow")]
    assert opts.replace_on_changes == ("spec",) and opts.delete_before_replace
    assert sts["metadata"]["annotations"]["pulumi.com/deletionPropagationPolicy"] == "foreground"


def test_the_statefulset_waits_for_its_permissions_and_its_store(stack) -> None:
    _, mocks = stack
    sts = ("kubernetes:apps/v1:StatefulSet", "reviewstream-dev-dataflow")
    assert mocks.depends_on(*sts, "aws:iam/rolePolicy:RolePolicy", "reviewstream-dev-dataflow")
    assert mocks.depends_on(*sts, "aws:s3/bucketVersioning:BucketVersioning", "reviewstream-dev-recovery")
    assert mocks.depends_on(*sts, "kubernetes:batch/v1:Job", "reviewstream-dev-access-mapping")


def test_pods_spread_over_zones_and_nodes_without_requiring_it(stack) -> None:
    _, mocks = stack
    spread = statefulset(mocks)["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [ZONE_KEY, "kubernetes.io/hostname"]
    assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" and c["maxSkew"] == 1 for c in spread)
    assert all(
        c["labelSelector"]["matchLabels"] == statefulset(mocks)["spec"]["selector"]["matchLabels"] for c in spread
    )


def test_headless_service_and_pdb(stack) -> None:
    _, mocks = stack
    svc = mocks.one("kubernetes:core/v1:Service").inputs
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["metadata"]["name"] == statefulset(mocks)["spec"]["serviceName"]
    pdb = mocks.one("kubernetes:policy/v1:PodDisruptionBudget").inputs
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == statefulset(mocks)["spec"]["selector"]


def test_kubernetes_objects_validate_against_the_schema(stack) -> None:
    _, mocks = stack
    objects = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
    assert {r.inputs["kind"] for r in objects} >= {
        "Namespace", "ServiceAccount", "Service", "StatefulSet", "PodDisruptionBudget",
    }  # fmt: skip
    for obj in objects:
        kubernetes_validate.validate(obj.inputs, K8S_VERSION, strict=True)


def test_schema_validation_catches_a_broken_statefulset(stack) -> None:
    _, mocks = stack
    broken = statefulset(mocks)
    broken = {**broken, "spec": {**broken["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_liveness_command_fails_on_stale_or_missing_and_passes_on_fresh(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    command = liveness_command(60)
    assert command[:3] == ["python", "-m", "dataflow.heartbeat"] and command[3] == HEARTBEAT_FILE
    cli = [sys.executable, *command[1:3], str(path), command[4]]
    assert subprocess.run(cli, capture_output=True, timeout=30).returncode == 1  # missing
    heartbeat.Heartbeat(str(path)).beat()
    assert subprocess.run(cli, capture_output=True, timeout=30).returncode == 0
    path.write_text("0\n")  # 1970
    stale = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert stale.returncode == 1 and stale.stdout.startswith("heartbeat.stale")
