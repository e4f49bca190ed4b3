"""SSM-only bastion: no inbound rule, no public IP, IMDSv2, encrypted root volume.

Operators reach it with Session Manager port forwarding; it runs a SigV4-signing proxy to the
OpenSearch domain so Dashboards (IAM-only access) can be used from a workstation browser. Its role is
mapped to read-only and Dashboards roles in OpenSearch (infra/access.py), not to the master user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.iam import AWS_MANAGED, service_trust_policy, to_json

# Checked by the policy pack: a group with this tag must have no ingress rule.
NO_INGRESS_TAG = "reviewstream:no-ingress"
# The operator policy admits `ssm:StartSession` only on instances with this tag (value: the stack name).
BASTION_TAG = "reviewstream:bastion"

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
PROXY_PORT = 9200
PROXY_SOURCE = Path(__file__).parent / "assets" / "sigv4_proxy.py"


@dataclass
class Bastion:
    instance_id: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]


def build_bastion_role(name: str, tags: dict[str, str]) -> aws.iam.Role:
    """Created before the domain because the domain's access policy names it."""
    role = aws.iam.Role(
        f"{name}-bastion", assume_role_policy=to_json(service_trust_policy("ec2.amazonaws.com")), tags=tags
    )
    aws.iam.RolePolicyAttachment(
        f"{name}-bastion-ssm", role=role.name, policy_arn=f"{AWS_MANAGED}/AmazonSSMManagedInstanceCore"
    )
    return role


def build_bastion_security_group(
    name: str,
    vpc_id: pulumi.Input[str],
    vpc_cidr: str,
    s3_prefix_list_id: pulumi.Input[str],
    tags: dict[str, str],
) -> aws.ec2.SecurityGroup:
    return aws.ec2.SecurityGroup(
        f"{name}-bastion",
        vpc_id=vpc_id,
        description="Bastion: no inbound; HTTPS out to VPC endpoints, the domain and S3 only",
        ingress=[],
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_blocks=[vpc_cidr],
                description="SSM endpoints and OpenSearch",
            ),
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=443,
                to_port=443,
                prefix_list_ids=[s3_prefix_list_id],
                description="S3 gateway (dnf repositories)",
            ),
        ],
        tags={**tags, "Name": f"{name}-bastion", NO_INGRESS_TAG: "true"},
    )


def user_data(endpoint: str, region: str) -> str:
    """Install the signing proxy as a systemd service bound to loopback (nothing else: access mapping is a
    deploy step of its own, see infra/access.py)."""
    source = PROXY_SOURCE.read_text()
    return f"""#!/bin/bash
set -euo pipefail
dnf install -y python3-botocore
install -d -m 0755 /opt/sigv4-proxy
cat > /opt/sigv4-proxy/proxy.py <<'PROXY'
{source}
PROXY
cat > /etc/systemd/system/sigv4-proxy.service <<'UNIT'
[Unit]
Description=SigV4 proxy to OpenSearch
After=network-online.target
[Service]
Environment=OPENSEARCH_ENDPOINT={endpoint} AWS_REGION={region} PROXY_PORT={PROXY_PORT}
ExecStart=/usr/bin/python3 /opt/sigv4-proxy/proxy.py
DynamicUser=yes
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sigv4-proxy
"""


def build_bastion(
    name: str,
    *,
    role: aws.iam.Role,
    security_group_id: pulumi.Input[str],
    subnet_id: pulumi.Input[str],
    instance_type: str,
    opensearch_endpoint: pulumi.Input[str],
    region: str,
    tags: dict[str, str],
) -> Bastion:
    profile = aws.iam.InstanceProfile(f"{name}-bastion", role=role.name, tags=tags)
    ami = aws.ssm.get_parameter(name=AMI_PARAMETER)
    instance = aws.ec2.Instance(
        f"{name}-bastion",
        ami=ami.value,
        instance_type=instance_type,
        subnet_id=subnet_id,
        vpc_security_group_ids=[security_group_id],
        associate_public_ip_address=False,
        iam_instance_profile=profile.name,
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
            http_tokens="required", http_endpoint="enabled", http_put_response_hop_limit=1
        ),
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(encrypted=True, volume_type="gp3", volume_size=8),
        user_data=pulumi.Output.from_input(opensearch_endpoint).apply(lambda e: user_data(e, region)),
        user_data_replace_on_change=True,
        tags={**tags, "Name": f"{name}-bastion", BASTION_TAG: name},
        # A new Amazon Linux AMI must not replace the bastion on the next `pulumi up` (dnf updates it).
        opts=pulumi.ResourceOptions(ignore_changes=["ami"]),
    )
    return Bastion(
        instance_id=instance.id, role_arn=role.arn, security_group_id=pulumi.Output.from_input(security_group_id)
    )


def tunnel_parameters(port: int, local_port: int, host: str | None = None) -> str:
    """The `--parameters` JSON of a Session Manager port-forwarding session (for `--parameters "$(...)"`)."""
    params = {"host": [host]} if host else {}
    params.update(portNumber=[str(port)], localPortNumber=[str(local_port)])
    return json.dumps(params, separators=(",", ":"))


def _shorthand(params_json: str) -> str:
    """The same parameters in the CLI's shorthand syntax: no quotes, so the command survives `$(...)`."""
    return ",".join(f"{k}={v[0]}" for k, v in json.loads(params_json).items())


def port_forward_command(
    instance_id: str, host: str, region: str, remote_port: int = 443, local_port: int = 9443
) -> str:
    """Session Manager tunnel from a workstation port to a host the bastion can reach."""
    return (
        f"aws ssm start-session --region {region} --target {instance_id} "
        "--document-name AWS-StartPortForwardingSessionToRemoteHost "
        f"--parameters {_shorthand(tunnel_parameters(remote_port, local_port, host))}"
    )


def dashboards_tunnel_command(instance_id: str, region: str, local_port: int = PROXY_PORT) -> str:
    """Tunnel to the bastion's signing proxy; Dashboards is then at http://localhost:<port>/_dashboards."""
    return (
        f"aws ssm start-session --region {region} --target {instance_id} "
        "--document-name AWS-StartPortForwardingSession "
        f"--parameters {_shorthand(tunnel_parameters(PROXY_PORT, local_port))}"
    )
