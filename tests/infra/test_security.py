"""Security properties of the AWS resources, asserted on the inputs the mocked program registered."""

from __future__ import annotations

import json

import pytest

from infra import program
from infra.config import StackConfig
from infra.network import INTERFACE_ENDPOINT_SERVICES
from infra.search import TLS_POLICY
from tests.infra.conftest import run
from tests.infra.mocks import RecordingMocks

ALLOWED_TLS = ("Policy-Min-TLS-1-2-PFS-2023-10", "Policy-Min-TLS-1-2-2019-07")


def test_opensearch_domain_is_locked_down(stack) -> None:
    _, mocks = stack
    domain = mocks.one("aws:opensearch/domain:Domain").inputs
    assert domain["domainEndpointOptions"]["enforceHttps"] is True
    assert domain["domainEndpointOptions"]["tlsSecurityPolicy"] in ALLOWED_TLS
    assert TLS_POLICY in ALLOWED_TLS
    assert domain["encryptAtRest"]["enabled"] is True
    assert domain["nodeToNodeEncryption"]["enabled"] is True
    security = domain["advancedSecurityOptions"]
    assert security["enabled"] is True
    assert security["internalUserDatabaseEnabled"] is False
    assert security["masterUserOptions"]["masterUserArn"].startswith("arn:aws:iam::")
    assert ":role/" in security["masterUserOptions"]["masterUserArn"]
    assert "masterUserName" not in security["masterUserOptions"]
    assert len(domain["vpcOptions"]["subnetIds"]) == 2
    assert domain["clusterConfig"]["zoneAwarenessEnabled"] is True


def test_opensearch_security_group_admits_only_cluster_and_bastion(stack) -> None:
    _, mocks = stack
    sg = mocks.named("aws:ec2/securityGroup:SecurityGroup", "reviewstream-dev-opensearch").inputs
    (rule,) = sg["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["protocol"]) == (443, 443, "tcp")
    assert sorted(rule["securityGroups"]) == sorted(["sg-0eksclustersg", "sg-reviewstream-dev-bastion"])
    assert not rule.get("cidrBlocks")
    domain = mocks.one("aws:opensearch/domain:Domain").inputs
    assert domain["vpcOptions"]["securityGroupIds"] == ["sg-reviewstream-dev-opensearch"]


def test_opensearch_service_linked_role_is_guarded_by_flag(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(create_service_linked_role=False)))
    assert mocks.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole") == []


def test_opensearch_service_linked_role_by_default(stack) -> None:
    _, mocks = stack
    slr = mocks.one("aws:iam/serviceLinkedRole:ServiceLinkedRole").inputs
    assert slr["awsServiceName"] == "opensearchservice.amazonaws.com"


def test_stream_is_kms_encrypted_with_rotating_key(stack) -> None:
    _, mocks = stack
    stream = mocks.one("aws:kinesis/stream:Stream").inputs
    assert stream["encryptionType"] == "KMS"
    assert stream["kmsKeyId"] == "arn:aws:kms:us-east-1:123456789012:key/key-reviewstream-dev-stream"
    assert stream["streamModeDetails"]["streamMode"] == "ON_DEMAND"
    assert "shardCount" not in stream
    assert stream["retentionPeriod"] == 48
    for key in mocks.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True


@pytest.mark.parametrize("mode, shards", [("PROVISIONED", 4)])
def test_provisioned_stream_takes_shard_count(mocks: RecordingMocks, mode: str, shards: int) -> None:
    run(lambda: program.build(StackConfig(stream_capacity_mode=mode, stream_shard_count=shards)))
    stream = mocks.one("aws:kinesis/stream:Stream").inputs
    assert (stream["streamModeDetails"]["streamMode"], stream["shardCount"]) == (mode, shards)


def test_ecr_is_immutable_scanned_encrypted_with_lifecycle(stack) -> None:
    _, mocks = stack
    repo = mocks.one("aws:ecr/repository:Repository").inputs
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo["encryptionConfigurations"][0]["encryptionType"] == "KMS"
    assert mocks.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"]


def test_bastion_has_no_ingress_imdsv2_and_encrypted_root(stack) -> None:
    _, mocks = stack
    sg = mocks.named("aws:ec2/securityGroup:SecurityGroup", "reviewstream-dev-bastion").inputs
    assert not sg.get("ingress")
    assert {(r["fromPort"], r["toPort"]) for r in sg["egress"]} == {(443, 443)}
    assert all("0.0.0.0/0" not in r.get("cidrBlocks", []) for r in sg["egress"])
    instance = mocks.one("aws:ec2/instance:Instance").inputs
    assert instance["metadataOptions"]["httpTokens"] == "required"
    assert instance["rootBlockDevice"]["encrypted"] is True
    assert instance["associatePublicIpAddress"] is False
    assert instance["ami"] == "ami-0123456789abcdef0"
    assert instance["subnetId"].startswith("subnet-reviewstream-dev-private")
    profile = mocks.one("aws:iam/instanceProfile:InstanceProfile").inputs
    assert profile["role"] == "reviewstream-dev-bastion"
    ssm = mocks.named("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "reviewstream-dev-bastion-ssm")
    assert ssm.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    assert "sigv4-proxy" in instance["userData"]


def test_network_is_private_with_endpoints(stack) -> None:
    _, mocks = stack
    subnets = mocks.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2
    assert {s.inputs["availabilityZoneId"] for s in subnets} == {"use1-az1", "use1-az2"}
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert mocks.of_type("aws:ec2/internetGateway:InternetGateway") == []
    assert mocks.of_type("aws:ec2/natGateway:NatGateway") == []
    assert mocks.of_type("aws:ec2/route:Route") == []
    endpoints = {e.inputs["serviceName"]: e.inputs for e in mocks.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    required = {
        "kinesis-streams", "bedrock-runtime", "ecr.api", "ecr.dkr", "sts", "ssm", "ssmmessages", "ec2messages",
    }  # fmt: skip
    assert required <= set(INTERFACE_ENDPOINT_SERVICES)
    # The CloudWatch add-on ships container logs and Container Insights from the nodes (infra/observability.py).
    assert {"logs", "monitoring"} <= set(INTERFACE_ENDPOINT_SERVICES)
    for service in INTERFACE_ENDPOINT_SERVICES:
        endpoint = endpoints[f"com.amazonaws.us-east-1.{service}"]
        assert endpoint["vpcEndpointType"] == "Interface"
        assert endpoint["privateDnsEnabled"] is True
        assert len(endpoint["subnetIds"]) == 2
        assert endpoint["securityGroupIds"] == ["sg-reviewstream-dev-endpoints"]
    s3 = endpoints["com.amazonaws.us-east-1.s3"]
    assert s3["vpcEndpointType"] == "Gateway"
    assert len(s3["routeTableIds"]) == 2
    sg = mocks.named("aws:ec2/securityGroup:SecurityGroup", "reviewstream-dev-endpoints").inputs
    (rule,) = sg["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["cidrBlocks"]) == (443, 443, ["10.40.0.0/16"])


def test_eks_cluster_is_private_with_oidc_and_api_auth(stack) -> None:
    _, mocks = stack
    cluster = mocks.one("eks:index:Cluster").inputs
    assert cluster["createOidcProvider"] is True
    assert cluster["endpointPrivateAccess"] is True
    assert cluster["endpointPublicAccess"] is False
    assert cluster["nodeAssociatePublicIpAddress"] is False
    assert cluster["authenticationMode"] == "API"
    assert cluster["skipDefaultNodeGroup"] is True
    assert len(cluster["privateSubnetIds"]) == 2
    assert "publicSubnetIds" not in cluster
    assert cluster["encryptionConfigKeyArn"].startswith("arn:aws:kms:")
    nodes = mocks.one("eks:index:ManagedNodeGroup").inputs
    assert nodes["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 2}
    assert nodes["instanceTypes"] == ["t3.large"]
    assert len(nodes["subnetIds"]) == 2
    assert nodes["enableIMDSv2"] is True
    assert not mocks.of_type("kubernetes:storage.k8s.io/v1:StorageClass")  # no volumes: state is in S3


@pytest.mark.parametrize("version", ["1.34", "1.35"])
def test_coredns_and_kube_proxy_are_eks_addons_that_follow_the_kubernetes_version(
    mocks: RecordingMocks, version: str
) -> None:
    """pulumi-eks would install a self-managed CoreDNS (no default node group), which EKS never upgrades."""
    run(lambda: program.build(StackConfig(kubernetes_version=version)))
    cluster = mocks.one("eks:index:Cluster").inputs
    assert cluster["corednsAddonOptions"]["enabled"] is False
    assert cluster["kubeProxyAddonOptions"]["enabled"] is False
    addons = {a.inputs["addonName"]: a.inputs for a in mocks.of_type("aws:eks/addon:Addon")}
    # The CloudWatch add-on (container logs, Container Insights: infra/observability.py) follows it too.
    assert set(addons) == {"coredns", "kube-proxy", "amazon-cloudwatch-observability"}
    assert addons["amazon-cloudwatch-observability"]["addonVersion"] == f"v4.4.0-eksbuild.{version}"
    assert addons["coredns"]["addonVersion"] == f"v1.12.1-eksbuild.{version}"
    assert addons["kube-proxy"]["addonVersion"] == f"v{version}.0-eksbuild.1"
    assert mocks.depends_on(
        "aws:eks/addon:Addon", "reviewstream-dev-coredns", "eks:index:ManagedNodeGroup", "reviewstream-dev-nodes"
    )


def test_recovery_bucket_is_private_versioned_encrypted_and_tls_only(stack) -> None:
    _, mocks = stack
    name = "reviewstream-dev-recovery"
    block = mocks.named("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name).inputs
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    assert mocks.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }
    sse_type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    sse = mocks.named(sse_type, name).inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    policy = json.loads(mocks.named("aws:s3/bucketPolicy:BucketPolicy", name).inputs["policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = mocks.named("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", name).inputs
    (rule,) = lifecycle["rules"]
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 7}


def test_public_endpoint_only_with_named_cidrs(mocks: RecordingMocks) -> None:
    run(lambda: program.build(StackConfig(cluster_public_access_cidrs=("203.0.113.7/32",))))
    cluster = mocks.one("eks:index:Cluster").inputs
    assert cluster["endpointPublicAccess"] is True
    assert cluster["publicAccessCidrs"] == ["203.0.113.7/32"]


def test_every_kubernetes_resource_uses_the_cluster_provider(stack) -> None:
    _, mocks = stack
    k8s = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
    assert len(k8s) >= 6
    assert all(r.provider and "pulumi:providers:kubernetes::reviewstream-dev-k8s" in r.provider for r in k8s)
