"""VPC over two AZs with private subnets only, reaching AWS services through VPC endpoints.

There is no internet or NAT gateway: every AWS API the workloads and the bastion call has an endpoint
in the VPC, so nothing needs a public IP and no traffic leaves the AWS network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import ZONE_COUNT

# Interface endpoints: the dataflow (kinesis, bedrock, sts for IRSA), image pulls (ecr), the node
# bootstrap, VPC CNI and EBS CSI driver (ec2), and the SSM agent on the bastion (ssm*, ec2messages).
# `logs` and `monitoring`: the CloudWatch add-on's Fluent Bit and agent ship container logs and Container
# Insights from the nodes (infra/observability.py). AMP's managed collector writes from AWS's side: no endpoint.
INTERFACE_ENDPOINT_SERVICES: tuple[str, ...] = (
    "kinesis-streams",
    "bedrock-runtime",
    "ecr.api",
    "ecr.dkr",
    "sts",
    "ssm",
    "ssmmessages",
    "ec2messages",
    "ec2",
    "logs",
    "monitoring",
)
AZ_COUNT = ZONE_COUNT
# Zone ids where EKS cannot place a control plane (EKS user guide, cluster VPC considerations; CreateCluster
# fails with UnsupportedAvailabilityZoneException). Zone *names* map to different ids in every account.
EKS_UNSUPPORTED_ZONE_IDS: tuple[str, ...] = ("use1-az3", "usw1-az2", "cac1-az3")


@dataclass
class Network:
    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    zone_ids: list[str]
    private_subnet_ids: list[pulumi.Output[str]]
    route_table_ids: list[pulumi.Output[str]]
    endpoint_security_group_id: pulumi.Output[str]
    s3_prefix_list_id: pulumi.Output[str]
    endpoint_ids: dict[str, pulumi.Output[str]]


def subnet_cidrs(vpc_cidr: str, count: int = AZ_COUNT) -> list[str]:
    """Carve `count` equal private subnets out of the first half of the VPC (room left to grow)."""
    net = ipaddress.ip_network(vpc_cidr)
    subnets = list(net.subnets(prefixlen_diff=3))
    return [str(s) for s in subnets[:count]]


def choose_zone_ids(
    available_ids: Sequence[str], wanted: Sequence[str] = (), count: int = AZ_COUNT, region: str = ""
) -> list[str]:
    """`count` zone ids: the configured ones (each must be available), else the first EKS supports."""
    if wanted:
        missing = [z for z in wanted if z not in available_ids or z in EKS_UNSUPPORTED_ZONE_IDS]
        if missing:
            raise ValueError(
                f"availabilityZoneIds: {missing} not available for EKS in {region} ({list(available_ids)})"
            )
        if len(set(wanted)) != count:
            raise ValueError(f"availabilityZoneIds: name exactly {count} distinct zone ids")
        return list(wanted)
    chosen = [z for z in available_ids if z not in EKS_UNSUPPORTED_ZONE_IDS][:count]
    if len(chosen) < count:
        raise ValueError(f"region {region} has fewer than {count} available zones EKS supports")
    return chosen


def build_network(name: str, region: str, vpc_cidr: str, tags: dict[str, str], zone_ids: Sequence[str] = ()) -> Network:
    zones = aws.get_availability_zones(
        state="available",
        exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS),
        filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
    )
    azs = choose_zone_ids(zones.zone_ids, zone_ids, AZ_COUNT, region)
    vpc = aws.ec2.Vpc(
        f"{name}-vpc",
        cidr_block=vpc_cidr,
        enable_dns_hostnames=True,  # private DNS names of the interface endpoints need both
        enable_dns_support=True,
        tags={**tags, "Name": f"{name}-vpc"},
    )
    subnet_ids: list[pulumi.Output[str]] = []
    route_table_ids: list[pulumi.Output[str]] = []
    for i, (az, cidr) in enumerate(zip(azs, subnet_cidrs(vpc_cidr), strict=True)):
        subnet = aws.ec2.Subnet(
            f"{name}-private-{i}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone_id=az,
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{name}-private-{az}", "kubernetes.io/role/internal-elb": "1"},
        )
        # A route table with only the local route (plus the S3 gateway): a private subnet by construction.
        table = aws.ec2.RouteTable(f"{name}-private-{i}", vpc_id=vpc.id, tags={**tags, "Name": f"{name}-{az}"})
        aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=table.id)
        subnet_ids.append(subnet.id)
        route_table_ids.append(table.id)

    endpoint_sg = aws.ec2.SecurityGroup(
        f"{name}-endpoints",
        vpc_id=vpc.id,
        description="VPC interface endpoints: HTTPS from inside the VPC only",
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=443, to_port=443, cidr_blocks=[vpc_cidr], description="HTTPS from VPC"
            )
        ],
        egress=[],
        tags={**tags, "Name": f"{name}-endpoints"},
    )
    endpoint_ids: dict[str, pulumi.Output[str]] = {}
    for service in INTERFACE_ENDPOINT_SERVICES:
        endpoint = aws.ec2.VpcEndpoint(
            f"{name}-{service.replace('.', '-')}",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{region}.{service}",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=subnet_ids,
            security_group_ids=[endpoint_sg.id],
            tags={**tags, "Name": f"{name}-{service}"},
        )
        endpoint_ids[service] = endpoint.id
    s3 = aws.ec2.VpcEndpoint(
        f"{name}-s3",
        vpc_id=vpc.id,
        service_name=f"com.amazonaws.{region}.s3",
        vpc_endpoint_type="Gateway",
        route_table_ids=route_table_ids,  # ECR image layers and the bastion's dnf repositories live in S3
        tags={**tags, "Name": f"{name}-s3"},
    )
    endpoint_ids["s3"] = s3.id
    return Network(
        vpc_id=vpc.id,
        vpc_cidr=vpc_cidr,
        zone_ids=azs,
        private_subnet_ids=subnet_ids,
        route_table_ids=route_table_ids,
        endpoint_security_group_id=endpoint_sg.id,
        s3_prefix_list_id=s3.prefix_list_id,
        endpoint_ids=endpoint_ids,
    )
