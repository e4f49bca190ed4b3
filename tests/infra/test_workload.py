"""The dataflow's Kubernetes objects: StatefulSet wiring, security context, and schema validity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from dataflow import heartbeat
from dataflow.settings import load_settings
from infra.versions import DEFAULT_VERSION
from infra.workload import APP, HEARTBEAT_FILE, METRICS_PORT, RECOVERY_MOUNT, init_recovery_script, liveness_command
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
    args = container["args"]
    assert args[args.index("-r") + 1] == f"{RECOVERY_MOUNT}/{APP}"
    assert args[args.index("-s") + 1] == "30"
    assert args[args.index("-b") + 1] == "300"
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert container["readinessProbe"]["tcpSocket"]["port"] in ("metrics", METRICS_PORT)
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
    from_field = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"] if "valueFrom" in e}
    assert from_field == {"BYTEWAX_NAMESPACE": "metadata.namespace", "BYTEWAX_POD_NAME": "metadata.name"}
    # The dataflow's own settings loader accepts every value we hand it.
    settings = load_settings({k: v for k, v in env.items() if v is not None})
    assert settings.opensearch_auth == "sigv4"
    assert settings.bedrock_reviews_per_request == 5
    assert settings.metrics_port == METRICS_PORT


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


def test_recovery_volume_and_init_container(stack) -> None:
    _, mocks = stack
    spec = statefulset(mocks)["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "recovery"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["storageClassName"] == "gp3-encrypted"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    (init,) = spec["template"]["spec"]["initContainers"]
    assert init["image"] == IMAGE
    script = init["command"][-1]
    assert 'python -m bytewax.recovery "$staging" 4' in script
    assert ".initialized" in script


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
        "Namespace", "ServiceAccount", "Service", "StatefulSet", "PodDisruptionBudget", "StorageClass",
    }  # fmt: skip
    for obj in objects:
        kubernetes_validate.validate(obj.inputs, K8S_VERSION, strict=True)


def test_schema_validation_catches_a_broken_statefulset(stack) -> None:
    _, mocks = stack
    broken = statefulset(mocks)
    broken = {**broken, "spec": {**broken["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_init_script_spreads_partitions_once(tmp_path: Path, replicas: int) -> None:
    """Run the real init script with the real `python -m bytewax.recovery`, once per pod, twice each."""
    partitions = 4
    found: dict[int, set[str]] = {}
    for ordinal in range(replicas):
        mount = tmp_path / f"pod-{ordinal}"
        mount.mkdir()
        script = init_recovery_script(f"{RECOVERY_MOUNT}/{APP}", partitions).replace(RECOVERY_MOUNT, str(mount))
        env = {
            **os.environ,
            "HOSTNAME": f"{APP}-{ordinal}",
            "BYTEWAX_REPLICAS": str(replicas),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        for _ in range(2):  # a restarted pod keeps its partitions
            subprocess.run(["sh", "-c", script], env=env, check=True, capture_output=True, timeout=60)
        found[ordinal] = {p.name for p in (mount / APP).glob("part-*.sqlite3")}
    union = set().union(*found.values())
    assert union == {f"part-{i}.sqlite3" for i in range(partitions)}
    assert sum(len(v) for v in found.values()) == partitions


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
