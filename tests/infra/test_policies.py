"""The policy pack, run on every resource the mocked program registers, and on deliberately bad ones."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from infra import bastion
from infra.policies import NO_INGRESS_TAG, POLICIES, violations

POLICY_DIR = Path(__file__).resolve().parents[2] / "infra" / "policies"


def test_the_whole_program_passes_every_policy(stack) -> None:
    _, mocks = stack
    assert len(mocks.resources) > 40
    found = {r.name: violations(r.typ, r.inputs, r.name) for r in mocks.resources}
    assert {name: v for name, v in found.items() if v} == {}


def test_policy_pack_is_declared() -> None:
    spec = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert spec["runtime"]["name"] == "python"
    assert (POLICY_DIR / "__main__.py").exists()
    assert len({p.name for p in POLICIES}) == len(POLICIES) >= 10
    assert bastion.NO_INGRESS_TAG == NO_INGRESS_TAG


def _mutated(mocks, typ: str, name: str | None = None) -> dict:
    resources = mocks.of_type(typ) if name is None else [mocks.named(typ, name)]
    return copy.deepcopy(resources[0].inputs)


@pytest.mark.parametrize(
    "typ, name, path, value, expected",
    [
        ("aws:opensearch/domain:Domain", None, ("domainEndpointOptions", "enforceHttps"), False, "HTTPS"),
        ("aws:opensearch/domain:Domain", None, ("domainEndpointOptions", "tlsSecurityPolicy"),
         "Policy-Min-TLS-1-0-2019-07", "TLS"),
        ("aws:opensearch/domain:Domain", None, ("encryptAtRest", "enabled"), False, "at rest"),
        ("aws:opensearch/domain:Domain", None, ("nodeToNodeEncryption", "enabled"), False, "node-to-node"),
        ("aws:opensearch/domain:Domain", None, ("advancedSecurityOptions", "internalUserDatabaseEnabled"), True,
         "internal user"),
        ("aws:kinesis/stream:Stream", None, ("encryptionType",), "NONE", "KMS"),
        ("aws:kms/key:Key", None, ("enableKeyRotation",), False, "rotation"),
        ("aws:ecr/repository:Repository", None, ("imageTagMutability",), "MUTABLE", "IMMUTABLE"),
        ("aws:ecr/repository:Repository", None, ("imageScanningConfiguration", "scanOnPush"), False, "scan"),
        ("aws:ec2/instance:Instance", None, ("metadataOptions", "httpTokens"), "optional", "IMDSv2"),
        ("aws:ec2/instance:Instance", None, ("rootBlockDevice", "encrypted"), False, "encrypted"),
        ("aws:ec2/subnet:Subnet", None, ("mapPublicIpOnLaunch",), True, "public IPs"),
        ("eks:index:Cluster", None, ("endpointPrivateAccess",), False, "privately"),
        ("eks:index:Cluster", None, ("authenticationMode",), "CONFIG_MAP", "API"),
        ("eks:index:Cluster", None, ("nodeAssociatePublicIpAddress",), True, "public IPs"),
    ],
)  # fmt: skip
def test_insecure_settings_are_caught(stack, typ, name, path, value, expected) -> None:
    _, mocks = stack
    props = _mutated(mocks, typ, name)
    target = props
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = violations(typ, props)
    assert any(expected in v for v in found), found


def test_bastion_ingress_is_caught(stack) -> None:
    _, mocks = stack
    props = _mutated(mocks, "aws:ec2/securityGroup:SecurityGroup", "reviewstream-dev-bastion")
    props["ingress"] = [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.40.0.0/16"]}]
    assert any("no-ingress" in v for v in violations("aws:ec2/securityGroup:SecurityGroup", props))
    props["ingress"][0]["cidrBlocks"] = ["0.0.0.0/0"]
    assert any("internet" in v for v in violations("aws:ec2/securityGroup:SecurityGroup", props))


def test_wildcard_iam_is_caught(stack) -> None:
    _, mocks = stack
    props = _mutated(mocks, "aws:iam/rolePolicy:RolePolicy")
    props["policy"] = '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
    found = violations("aws:iam/rolePolicy:RolePolicy", props)
    assert any("wildcard action" in v for v in found) and any("wildcard resource" in v for v in found)


def test_unpinned_web_identity_trust_is_caught(stack) -> None:
    _, mocks = stack
    role = _mutated(mocks, "aws:iam/role:Role", "reviewstream-dev-dataflow")
    role["assumeRolePolicy"] = role["assumeRolePolicy"].replace(":sub", ":not-sub")
    assert any("':sub'" in v for v in violations("aws:iam/role:Role", role))


def test_open_domain_policy_is_caught(stack) -> None:
    _, mocks = stack
    props = _mutated(mocks, "aws:opensearch/domainPolicy:DomainPolicy")
    props["accessPolicies"] = '{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:*"}]}'
    assert violations("aws:opensearch/domainPolicy:DomainPolicy", props)


def test_unhardened_pod_is_caught(stack) -> None:
    _, mocks = stack
    props = _mutated(mocks, "kubernetes:apps/v1:StatefulSet")
    container = props["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"privileged": True}
    del container["resources"]
    found = violations("kubernetes:apps/v1:StatefulSet", props)
    for expected in ("read-only", "privilege escalation", "ALL capabilities", "privileged", "limits"):
        assert any(expected in v for v in found), (expected, found)


def test_internet_gateway_is_caught() -> None:
    assert violations("aws:ec2/internetGateway:InternetGateway", {"vpcId": "vpc-1"})
