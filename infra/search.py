"""OpenSearch Service domain inside the VPC: HTTPS only (TLS 1.2+), encrypted at rest and between nodes,
fine-grained access control with an IAM role as master user, reachable on 443 from named SGs only.

The master user is a dedicated security-admin role used only by the access-mapping Job (infra/access.py);
with several instances the domain spans every subnet it is given, one zone per subnet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import domain_access_policy, to_json

TLS_POLICY = "Policy-Min-TLS-1-2-PFS-2023-10"


@dataclass
class Search:
    domain_name: pulumi.Output[str]
    domain_arn: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    dashboards_url: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    access_policy: aws.opensearch.DomainPolicy


def build_service_linked_role(name: str, enabled: bool) -> aws.iam.ServiceLinkedRole | None:
    """The role OpenSearch uses to place ENIs in the VPC; it exists once per account, hence the flag."""
    if not enabled:
        return None
    return aws.iam.ServiceLinkedRole(
        f"{name}-opensearch-slr",
        aws_service_name="opensearchservice.amazonaws.com",
        description="OpenSearch Service VPC access",
        opts=pulumi.ResourceOptions(retain_on_delete=True),  # other domains in the account may rely on it
    )


def build_search_security_group(
    name: str,
    vpc_id: pulumi.Input[str],
    source_security_group_ids: Sequence[pulumi.Input[str]],
    tags: dict[str, str],
) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        f"{name}-opensearch",
        vpc_id=vpc_id,
        description="OpenSearch domain: HTTPS from the cluster and the bastion only",
        ingress=[
            aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp",
                from_port=443,
                to_port=443,
                security_groups=list(source_security_group_ids),
                description="HTTPS from cluster nodes and bastion",
            )
        ],
        egress=[],
        tags={**tags, "Name": f"{name}-opensearch"},
    )


def build_search(
    name: str,
    *,
    engine_version: str,
    instance_type: str,
    instance_count: int,
    volume_size_gb: int,
    subnet_ids: Sequence[pulumi.Input[str]],
    security_group_id: pulumi.Input[str],
    master_role_arn: pulumi.Input[str],
    access_principal_arns: Sequence[pulumi.Input[str]],
    service_linked_role: aws.iam.ServiceLinkedRole | None,
    tags: dict[str, str],
) -> Search:
    zone_count = len(subnet_ids)
    multi_az = instance_count >= 2 and zone_count >= 2
    if multi_az and instance_count % zone_count:
        raise ValueError(f"opensearchInstanceCount={instance_count} does not spread evenly over {zone_count} zones")
    domain = aws.opensearch.Domain(
        f"{name}-search",
        domain_name=f"{name}-search"[:28],
        engine_version=engine_version,
        cluster_config=aws.opensearch.DomainClusterConfigArgs(
            instance_type=instance_type,
            instance_count=instance_count,
            zone_awareness_enabled=multi_az,
            zone_awareness_config=(
                aws.opensearch.DomainClusterConfigZoneAwarenessConfigArgs(availability_zone_count=zone_count)
                if multi_az
                else None
            ),
        ),
        ebs_options=aws.opensearch.DomainEbsOptionsArgs(
            ebs_enabled=True, volume_size=volume_size_gb, volume_type="gp3"
        ),
        vpc_options=aws.opensearch.DomainVpcOptionsArgs(
            subnet_ids=list(subnet_ids) if multi_az else list(subnet_ids)[:1],
            security_group_ids=[security_group_id],
        ),
        domain_endpoint_options=aws.opensearch.DomainDomainEndpointOptionsArgs(
            enforce_https=True, tls_security_policy=TLS_POLICY
        ),
        encrypt_at_rest=aws.opensearch.DomainEncryptAtRestArgs(enabled=True),
        node_to_node_encryption=aws.opensearch.DomainNodeToNodeEncryptionArgs(enabled=True),
        advanced_security_options=aws.opensearch.DomainAdvancedSecurityOptionsArgs(
            enabled=True,
            anonymous_auth_enabled=False,
            internal_user_database_enabled=False,  # identities are IAM roles, no passwords to manage
            master_user_options=aws.opensearch.DomainAdvancedSecurityOptionsMasterUserOptionsArgs(
                master_user_arn=master_role_arn
            ),
        ),
        tags=tags,
        opts=pulumi.ResourceOptions(depends_on=[service_linked_role] if service_linked_role else None),
    )
    policy = pulumi.Output.all(domain.arn, *access_principal_arns).apply(
        lambda a: to_json(domain_access_policy(a[0], a[1:]))
    )
    access_policy = aws.opensearch.DomainPolicy(
        f"{name}-search", domain_name=domain.domain_name, access_policies=policy
    )
    return Search(
        domain_name=domain.domain_name,
        domain_arn=domain.arn,
        endpoint=domain.endpoint,
        dashboards_url=domain.dashboard_endpoint.apply(lambda e: f"https://{e}"),
        security_group_id=pulumi.Output.from_input(security_group_id),
        access_policy=access_policy,
    )
