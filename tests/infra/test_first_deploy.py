"""What a first `pulumi up` in a fresh account and every later one depend on, checked offline."""

from __future__ import annotations

import copy
import json
from datetime import date

import pytest

from infra import policies, program
from infra.config import StackConfig
from infra.policies import violations
from tests.infra.conftest import run
from tests.infra.mocks import ACCOUNT, RecordingMocks

TODAY = date(2026, 11, 24)


def subnets_by_zone(mocks: RecordingMocks) -> dict[str, str]:
    return {s.inputs["availabilityZoneId"]: f"subnet-{s.name}" for s in mocks.of_type("aws:ec2/subnet:Subnet")}


def test_zones_are_chosen_by_id_skipping_those_eks_refuses(stack) -> None:
    """The account's first zone name maps to use1-az3, where EKS control planes cannot go."""
    _, mocks = stack
    assert set(subnets_by_zone(mocks)) == {"use1-az1", "use1-az2"}
    assert all("availabilityZone" not in s.inputs for s in mocks.of_type("aws:ec2/subnet:Subnet"))


def test_zones_can_be_configured_by_id(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(availability_zone_ids=("use1-az4", "use1-az2"))))
    assert set(subnets_by_zone(mocks)) == {"use1-az4", "use1-az2"}


@pytest.mark.parametrize("zones", [("use1-az3", "use1-az1"), ("use1-az9", "use1-az1")])
def test_unusable_configured_zones_fail_the_build(mocks: RecordingMocks, zones) -> None:
    with pytest.raises(Exception, match="availabilityZoneIds"):
        run(lambda: program.build(StackConfig(availability_zone_ids=zones)))


def test_opensearch_zone_awareness_matches_its_subnets(stack) -> None:
    _, mocks = stack
    domain = mocks.one("aws:opensearch/domain:Domain").inputs
    subnets = domain["vpcOptions"]["subnetIds"]
    assert domain["clusterConfig"]["zoneAwarenessConfig"]["availabilityZoneCount"] == len(subnets) == 2
    assert sorted(subnets) == sorted(subnets_by_zone(mocks).values())
    assert domain["clusterConfig"]["instanceCount"] % len(subnets) == 0
    broken = copy.deepcopy(domain)
    broken["vpcOptions"]["subnetIds"] = subnets[:1]
    assert any("zone awareness counts 2 zones" in v for v in violations("aws:opensearch/domain:Domain", broken))
    broken = copy.deepcopy(domain)
    broken["clusterConfig"]["instanceCount"] = 3
    assert any("spread evenly" in v for v in violations("aws:opensearch/domain:Domain", broken))


def test_single_node_domain_uses_one_subnet(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(opensearch_instance_count=1)))
    domain = mocks.one("aws:opensearch/domain:Domain").inputs
    assert len(domain["vpcOptions"]["subnetIds"]) == 1
    assert domain["clusterConfig"]["zoneAwarenessEnabled"] is False
    assert violations("aws:opensearch/domain:Domain", domain) == []


def test_bastion_ignores_new_amis(stack) -> None:
    _, mocks = stack
    options = mocks.options[("aws:ec2/instance:Instance", "reviewstream-dev-bastion")]
    assert "ami" in options.ignore_changes


def test_control_plane_logs_expire(stack) -> None:
    _, mocks = stack
    cluster = mocks.one("eks:index:Cluster").inputs
    assert cluster["enabledClusterLogTypes"]
    (group,) = [g for g in mocks.of_type("aws:cloudwatch/logGroup:LogGroup") if "/aws/eks/" in g.inputs["name"]]
    assert group.inputs["name"] == f"/aws/eks/{cluster['name']}/cluster"
    assert group.inputs["retentionInDays"] == 30
    assert mocks.depends_on("eks:index:Cluster", "reviewstream-dev-eks", "aws:cloudwatch/logGroup:LogGroup", group.name)
    assert any("retention" in v for v in violations("aws:cloudwatch/logGroup:LogGroup", {"name": "x"}))


def test_default_kubernetes_version_is_in_standard_support(stack, monkeypatch) -> None:
    _, mocks = stack
    monkeypatch.setattr(policies, "today", lambda: TODAY)
    cluster = mocks.one("eks:index:Cluster").inputs
    assert cluster["version"] not in ("1.33", "1.34")  # past, or days from, the end of standard support
    assert not [v for v in violations("eks:index:Cluster", cluster) if "eks-standard-support" in v]


@pytest.mark.parametrize("version, expected", [("1.33", "left standard support on 2026-07-29"),
                                               ("1.34", "leaves standard support on 2026-12-02"),
                                               ("1.99", "not in infra/versions.py")])  # fmt: skip
def test_policy_warns_on_versions_past_or_near_support_end(stack, monkeypatch, version: str, expected: str) -> None:
    _, mocks = stack
    monkeypatch.setattr(policies, "today", lambda: TODAY)
    cluster = {**mocks.one("eks:index:Cluster").inputs, "version": version}
    found = [v for v in violations("eks:index:Cluster", cluster) if "eks-standard-support" in v]
    assert len(found) == 1 and expected in found[0], found
    (policy,) = [p for p in policies.POLICIES if p.name == "eks-standard-support"]
    assert policy.enforcement_level.value == "advisory"


def test_operator_policy_starts_sessions_on_the_tagged_bastion_only(stack) -> None:
    _, mocks = stack
    instance = mocks.one("aws:ec2/instance:Instance").inputs
    assert instance["tags"]["reviewstream:bastion"] == "reviewstream-dev"
    doc = json.loads(mocks.named("aws:iam/policy:Policy", "reviewstream-dev-operator").inputs["policy"])
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    start = by_sid["StartSessionOnTheBastion"]
    assert start["Action"] == "ssm:StartSession"
    assert start["Resource"] == f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*"
    assert start["Condition"] == {
        "StringEquals": {"ssm:resourceTag/reviewstream:bastion": "reviewstream-dev"},
        "BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"},  # no shell through the default document
    }
    documents = by_sid["PortForwardingDocumentsOnly"]["Resource"]
    assert all(":document/AWS-StartPortForwardingSession" in d for d in documents)
    assert by_sid["OwnSessionsOnly"]["Resource"].endswith(":session/${aws:userid}-*")
    actions = {a for s in doc["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"ssm:StartSession", "ssm:TerminateSession", "ssm:ResumeSession"}


def test_public_endpoint_keeps_the_operator_cidr(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(cluster_public_access_cidrs=("203.0.113.7/32",))))
    cluster = mocks.one("eks:index:Cluster").inputs
    assert cluster["endpointPublicAccess"] is True and cluster["endpointPrivateAccess"] is True
    assert cluster["publicAccessCidrs"] == ["203.0.113.7/32"]
    assert [v for v in violations("eks:index:Cluster", cluster) if "eks-private" in v] == []
