"""Stack config: every knob in Pulumi.dev.yaml is read, and bad values fail at load."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from infra import config
from infra.config import ALARM_KEYS, AlarmThresholds, StackConfig

ROOT = Path(__file__).resolve().parents[2]


def _set_config(values: dict[str, object]) -> None:
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})


def test_dev_stack_file_sets_every_knob(mocks) -> None:
    stack_file = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    _set_config({**stack_file, "reviewstream:clusterPublicAccessCidrs": ["203.0.113.7/32"]})
    try:
        cfg = config.load()
    finally:
        pulumi.runtime.set_all_config({})
    assert cfg.region == stack_file["aws:region"]
    assert cfg.stream_capacity_mode == stack_file["reviewstream:streamCapacityMode"]
    assert cfg.bedrock_model_id == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert cfg.opensearch_instance_count == stack_file["reviewstream:opensearchInstanceCount"]
    assert cfg.node_desired_size == stack_file["reviewstream:eksNodeDesiredSize"]
    assert cfg.dataflow_replicas == stack_file["reviewstream:dataflowReplicas"]
    assert cfg.image_tag == str(stack_file["reviewstream:imageTag"])
    assert cfg.create_service_linked_role is True
    assert (cfg.project, cfg.stack) == ("reviewstream", "dev")
    assert cfg.kubernetes_version == str(stack_file["reviewstream:kubernetesVersion"])
    assert cfg.control_plane_log_retention_days == stack_file["reviewstream:controlPlaneLogRetentionDays"]
    assert cfg.container_log_retention_days == stack_file["reviewstream:containerLogRetentionDays"]
    assert (cfg.alarm_email, cfg.prometheus_scraper_access_entry) == ("", False)
    # Every alarm threshold is listed, with its default.
    for name, key in ALARM_KEYS.items():
        assert stack_file[f"reviewstream:{key}"] == getattr(AlarmThresholds(), name) == getattr(cfg.alarms, name)


def test_alarm_thresholds_are_read(mocks) -> None:
    _set_config(
        {
            "reviewstream:clusterPublicAccessCidrs": ["203.0.113.7/32"],
            "reviewstream:alarmConsumerLagS": 120,
            "reviewstream:alarmDeadLetterRatio": 0.2,
            "reviewstream:alarmEmail": "oncall@example.com",
            "reviewstream:prometheusScraperAccessEntry": True,
        }
    )
    try:
        cfg = config.load()
    finally:
        pulumi.runtime.set_all_config({})
    assert (cfg.alarms.consumer_lag_s, cfg.alarms.dead_letter_ratio) == (120, 0.2)
    assert cfg.alarms.pod_restarts == AlarmThresholds().pod_restarts
    assert (cfg.alarm_email, cfg.prometheus_scraper_access_entry) == ("oncall@example.com", True)


def test_no_way_to_the_kubernetes_api_fails_at_load_with_the_fix(mocks) -> None:
    """The shipped stack file names no CIDR: the first `pulumi up` stops before creating anything."""
    stack_file = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert stack_file["reviewstream:clusterPublicAccessCidrs"] == []
    _set_config(stack_file)
    try:
        with pytest.raises(ValueError, match=r"clusterPublicAccessCidrs\[0\]' <your-ip>/32"):
            config.load()
        _set_config({**stack_file, "reviewstream:clusterPrivateEndpointOnly": True})
        assert config.load().cluster_private_endpoint_only is True
    finally:
        pulumi.runtime.set_all_config({})


def test_project_file_points_at_infra() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "reviewstream"
    assert project["main"].rstrip("/") == "infra"
    assert project["runtime"]["name"] == "python"


def test_config_overrides_are_read(mocks) -> None:
    _set_config(
        {
            "reviewstream:streamCapacityMode": "provisioned",
            "reviewstream:streamShardCount": 6,
            "reviewstream:createServiceLinkedRole": False,
            "reviewstream:eksNodeMinSize": 0,
            "reviewstream:clusterPublicAccessCidrs": ["203.0.113.7/32"],
        }
    )
    try:
        cfg = config.load()
    finally:
        pulumi.runtime.set_all_config({})
    assert (cfg.stream_capacity_mode, cfg.stream_shard_count) == ("PROVISIONED", 6)
    assert cfg.create_service_linked_role is False
    assert cfg.node_min_size == 0
    assert cfg.cluster_public_access_cidrs == ("203.0.113.7/32",)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stream_capacity_mode": "SERVERLESS"},
        {"node_min_size": 3, "node_desired_size": 2},
        {"dataflow_replicas": 0},
        {"dataflow_replicas": 5, "recovery_partitions": 4},  # a fifth pod would own no partition
        {"opensearch_instance_count": 3},  # two zones: one would hold two of three nodes
        {"opensearch_instance_count": 5},
        {"availability_zone_ids": ("use1-az1",)},
    ],
)
def test_bad_config_fails_at_load(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        StackConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"dead_letter_ratio": 1.5}, {"bedrock_error_ratio": 0}, {"opensearch_free_storage_percent": 100}]
)
def test_bad_alarm_thresholds_fail_at_load(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AlarmThresholds(**kwargs)


def test_main_exports_the_documented_outputs(mocks) -> None:
    import runpy

    from tests.infra.conftest import run

    exported: dict[str, object] = {}
    _set_config({"reviewstream:clusterPublicAccessCidrs": ["203.0.113.7/32"]})
    original = pulumi.export
    pulumi.export = lambda key, value: exported.setdefault(key, value)  # type: ignore[assignment]
    try:
        run(lambda: runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"))
    finally:
        pulumi.export = original  # type: ignore[assignment]
        pulumi.runtime.set_all_config({})
    assert set(exported) >= {
        "streamName", "opensearchEndpoint", "dashboardsUrl", "bastionInstanceId", "portForwardCommand",
        "dashboardsTunnelCommand", "dashboardsTunnelParameters", "ecrRepositoryUrl", "clusterName", "kubeconfig",
        "region", "operatorPolicyArn", "prometheusWorkspaceId", "prometheusEndpoint", "alarmTopicArn", "dashboardUrl",
    }  # fmt: skip


def test_even_opensearch_counts_and_one_are_accepted() -> None:
    for count in (1, 2, 4):
        assert StackConfig(opensearch_instance_count=count).opensearch_instance_count == count
