"""Least-privilege IAM: pure policy-document builders (unit tested on their JSON) and the roles using them.

The documents are plain dicts built from resolved ARNs, so a test can parse them and check that no
action or resource is a wildcard where AWS accepts a narrower one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

# Read-only Kinesis consumption by shard iterator; all of these accept the stream ARN as resource.
# (ListStreams only accepts "*", and the dataflow does not need it.)
KINESIS_READ_ACTIONS = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
)
# Cross-region inference profiles route to the model in these regions (Bedrock user guide).
PROFILE_GEO_REGIONS: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-2"),
    "eu": ("eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"),
    "apac": (
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-4",
    ),
}
AWS_MANAGED = "arn:aws:iam::aws:policy"


def bedrock_model_arns(model_id: str, region: str, account_id: str, regions: Sequence[str] = ()) -> list[str]:
    """ARNs `bedrock:InvokeModel` needs for `model_id`: the inference profile and the models it routes to.

    A plain model id (no geography prefix) is only the foundation model in the stack's region.
    """
    prefix, _, base = model_id.partition(".")
    if prefix in PROFILE_GEO_REGIONS and base:
        targets = list(regions) or list(PROFILE_GEO_REGIONS[prefix])
        profile = f"arn:aws:bedrock:{region}:{account_id}:inference-profile/{model_id}"
        return [profile, *(f"arn:aws:bedrock:{r}::foundation-model/{base}" for r in targets)]
    targets = list(regions) or [region]
    return [f"arn:aws:bedrock:{r}::foundation-model/{model_id}" for r in targets]


def irsa_trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> dict:
    """Trust for IAM Roles for Service Accounts: only this one service account, only the STS audience."""
    issuer = oidc_issuer.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


def service_trust_policy(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def dataflow_policy(stream_arn: str, key_arn: str, model_arns: Sequence[str], domain_arn: str) -> dict:
    """What the dataflow does: read the stream, decrypt its records, call the model, write to the domain."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadStream", "Effect": "Allow", "Action": list(KINESIS_READ_ACTIONS), "Resource": stream_arn},
            {
                "Sid": "DecryptStream",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": key_arn,
                # Only when KMS is called on behalf of Kinesis (records decrypted by GetRecords).
                "Condition": {"StringLike": {"kms:ViaService": "kinesis.*.amazonaws.com"}},
            },
            {"Sid": "InvokeModel", "Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": list(model_arns)},
            {
                "Sid": "WriteSearch",
                "Effect": "Allow",
                "Action": ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"],
                "Resource": f"{domain_arn}/*",
            },
        ],
    }


def domain_access_policy(domain_arn: str, principal_arns: Sequence[str]) -> dict:
    """Resource policy of the OpenSearch domain: only the named roles, only HTTP actions on its paths."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": list(principal_arns)},
                "Action": "es:ESHttp*",
                "Resource": f"{domain_arn}/*",
            }
        ],
    }


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


@dataclass
class IrsaRole:
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    role: aws.iam.Role


def build_irsa_role(
    name: str,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    tags: dict[str, str],
    managed_policy_arns: Sequence[str] = (),
) -> IrsaRole:
    trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda a: to_json(irsa_trust_policy(a[0], a[1], namespace, service_account))
    )
    role = aws.iam.Role(name, name=name, assume_role_policy=trust, max_session_duration=3600, tags=tags)
    for i, arn in enumerate(managed_policy_arns):
        aws.iam.RolePolicyAttachment(f"{name}-{i}", role=role.name, policy_arn=arn)
    return IrsaRole(arn=role.arn, name=role.name, role=role)


def attach_dataflow_policy(
    name: str,
    role_name: pulumi.Input[str],
    stream_arn: pulumi.Input[str],
    key_arn: pulumi.Input[str],
    model_arns: Sequence[str] | pulumi.Input[Sequence[str]],
    domain_arn: pulumi.Input[str],
) -> aws.iam.RolePolicy:
    doc = pulumi.Output.all(stream_arn, key_arn, model_arns, domain_arn).apply(
        lambda a: to_json(dataflow_policy(a[0], a[1], a[2], a[3]))
    )
    return aws.iam.RolePolicy(name, role=role_name, policy=doc)
