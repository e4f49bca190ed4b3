"""Least-privilege IAM: pure policy-document builders (unit tested on their JSON) and the roles using them.

The documents are plain dicts built from resolved ARNs, so a test can parse them and check that no
action or resource is a wildcard where AWS accepts a narrower one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
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
# A system-defined inference profile id is `<geography>.<provider>.<model>` (us., eu., apac., global., us-gov.,
# jp., au., ca., ... new geographies keep the shape); a plain model id is `<provider>.<model>`.
PROFILE_ID = re.compile(r"^(?P<geo>[a-z]{2,6}(?:-[a-z]+)?)\.(?P<base>[a-z0-9-]+\.[^.]+)$")
AWS_MANAGED = "arn:aws:iam::aws:policy"


def partition_of(region: str) -> str:
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def bedrock_statements(model_id: str, region: str, account_id: str, regions: Sequence[str] = ()) -> list[dict]:
    """`bedrock:InvokeModel` for `model_id` (Converse needs InvokeModel), the way AWS documents it.

    An inference profile: the profile itself, plus its base model in whichever region the profile routes
    to (`arn:aws:bedrock:*::foundation-model/<base>`, or the `regions` given), but only when the call comes
    through this profile (`bedrock:InferenceProfileArn`). So no list of routing regions to keep up to date,
    and the model cannot be called directly. A plain model id: that model in the stack's region.
    Both: `bedrock:GetFoundationModel` on the base model in the stack's region, for the start-up check of the
    model's lifecycle (dataflow/enrich/lifecycle.py); it reads the model's card, it invokes nothing.
    """
    partition = partition_of(region)
    match = PROFILE_ID.match(model_id)
    base = model_id if match is None else match.group("base")
    lifecycle = {
        "Sid": "ReadModelLifecycle",
        "Effect": "Allow",
        "Action": "bedrock:GetFoundationModel",
        "Resource": f"arn:{partition}:bedrock:{region}::foundation-model/{base}",
    }
    if match is None:
        targets = list(regions) or [region]
        arns = [f"arn:{partition}:bedrock:{r}::foundation-model/{model_id}" for r in targets]
        return [{"Sid": "InvokeModel", "Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": arns}, lifecycle]
    profile = f"arn:{partition}:bedrock:{region}:{account_id}:inference-profile/{model_id}"
    models = [f"arn:{partition}:bedrock:{r}::foundation-model/{base}" for r in (list(regions) or ["*"])]
    return [
        lifecycle,
        {"Sid": "InvokeProfile", "Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": profile},
        {
            "Sid": "InvokeProfileModel",
            "Effect": "Allow",
            "Action": "bedrock:InvokeModel",
            "Resource": models,
            "Condition": {"StringEquals": {"bedrock:InferenceProfileArn": profile}},
        },
    ]


def operator_policy(region: str, account_id: str, stack_name: str, tag_key: str) -> dict:
    """What an operator needs to reach Dashboards: a port-forwarding session on this stack's bastion only.

    `ssm:StartSession` names the instance by tag (so a replaced bastion needs no policy change) and the two
    port-forwarding documents, with the document access check on (no shell session); operators may end or
    resume only their own sessions.
    """
    partition = partition_of(region)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartSessionOnTheBastion",
                "Effect": "Allow",
                "Action": "ssm:StartSession",
                "Resource": f"arn:{partition}:ec2:{region}:{account_id}:instance/*",
                "Condition": {
                    "StringEquals": {f"ssm:resourceTag/{tag_key}": stack_name},
                    # Without it a session with no --document-name (a shell) is not checked against the
                    # documents below (Session Manager docs, "ssm:SessionDocumentAccessCheck").
                    "BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"},
                },
            },
            {
                "Sid": "PortForwardingDocumentsOnly",
                "Effect": "Allow",
                "Action": "ssm:StartSession",
                "Resource": [
                    f"arn:{partition}:ssm:{region}::document/AWS-StartPortForwardingSession",
                    f"arn:{partition}:ssm:{region}::document/AWS-StartPortForwardingSessionToRemoteHost",
                ],
            },
            {
                "Sid": "OwnSessionsOnly",
                "Effect": "Allow",
                "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
                "Resource": f"arn:{partition}:ssm:{region}:{account_id}:session/${{aws:userid}}-*",
            },
        ],
    }


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


def recovery_statements(bucket_arn: str, prefix: str) -> list[dict]:
    """The recovery store: read and write the partitions under the StatefulSet's prefix. ListBucket on the
    (dedicated) bucket so that a missing object answers 404, not 403: the first start tells "no set yet"."""
    return [
        {
            "Sid": "RecoveryPartitions",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{bucket_arn}/{prefix}/*",
        },
        {"Sid": "RecoveryBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
    ]


def dataflow_policy(
    stream_arn: str,
    key_arn: str,
    model_statements: Sequence[dict],
    domain_arn: str,
    recovery: Sequence[dict] = (),
    batch: Sequence[dict] = (),
) -> dict:
    """What the dataflow does: read the stream, decrypt its records, call the model, write to the domain, keep
    its recovery partitions in the store, and (the backfill) run Bedrock batch jobs (infra/batch.py)."""
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
            *model_statements,
            {
                "Sid": "WriteSearch",
                "Effect": "Allow",
                "Action": ["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"],
                "Resource": f"{domain_arn}/*",
            },
            *recovery,
            *batch,
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
    model_statements: Sequence[dict],
    domain_arn: pulumi.Input[str],
    recovery_bucket_arn: pulumi.Input[str],
    recovery_prefix: str,
    batch: Callable[[str, str], list[dict]] = lambda bucket, role: [],
    batch_bucket_arn: pulumi.Input[str] = "",
    batch_role_arn: pulumi.Input[str] = "",
) -> aws.iam.RolePolicy:
    """The policy the pods run with; the StatefulSet depends on it, so no pod starts with a model id (or a store)
    that the role does not allow yet. `batch(bucket ARN, role ARN)`: the backfill's statements."""
    doc = pulumi.Output.all(
        stream_arn, key_arn, domain_arn, recovery_bucket_arn, batch_bucket_arn, batch_role_arn
    ).apply(
        lambda a: to_json(
            dataflow_policy(
                a[0], a[1], model_statements, a[2], recovery_statements(a[3], recovery_prefix), batch(a[4], a[5])
            )
        )
    )
    return aws.iam.RolePolicy(name, role=role_name, policy=doc)
