"""Bedrock batch inference for the backfill (dataflow/backfill): the job files' bucket, the role Bedrock assumes,
and what the dataflow's own role may do with jobs.

Job files live in a bucket of their own, under `bedrock-batch/` (BACKFILL_JOB_URL = s3://<bucket>/bedrock-batch):
they hold review text and model answers, are re-creatable, and must really go when they expire, so the bucket
is not versioned (an expired object leaves no old version behind), and no policy written for batch jobs can
reach the recovery store's partitions. A lifecycle rule expires job files after `batchJobFilesExpireDays`
(at least 8: a job may run 7 days, Bedrock's longest timeout, and its output must be read after).

The backfill lays a run out as `<prefix>/<run>/input/<job>/...` (what Bedrock reads) and
`<prefix>/<run>/output/<job>/...` (what Bedrock writes), beside its own bookkeeping files. The service role
(trust: bedrock.amazonaws.com, only for our account's model-invocation jobs in this region, as the Bedrock
user guide's "Create a custom service role for batch inference" recommends) reads only `*/input/*`, writes
only `*/output/*`, lists only under the prefix, and only in a bucket of our account (`aws:ResourceAccount`).
The bucket is encrypted with S3-managed keys (SSE-S3), so no KMS key grant is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import partition_of, to_json
from infra.recovery_store import private_bucket

PREFIX = "bedrock-batch"
MIN_EXPIRE_DAYS = 8  # Bedrock's longest job timeout (168 h) and a day to read the output
BEDROCK = "bedrock.amazonaws.com"
JOB_ACTIONS = (  # on model-invocation-job ARNs; TagResource because jobs are created with the run's tag
    "bedrock:GetModelInvocationJob",
    "bedrock:StopModelInvocationJob",
    "bedrock:TagResource",
    "bedrock:ListTagsForResource",
)
LIST_ACTION = "bedrock:ListModelInvocationJobs"  # has no resource type: IAM accepts only "*" for it


def job_arn_pattern(region: str, account_id: str) -> str:
    return f"arn:{partition_of(region)}:bedrock:{region}:{account_id}:model-invocation-job/*"


def batch_trust_policy(region: str, account_id: str) -> dict:
    """Bedrock may assume the role only for this account's batch jobs in this region (confused deputy)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": BEDROCK},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnEquals": {"aws:SourceArn": job_arn_pattern(region, account_id)},
                },
            }
        ],
    }


def batch_role_policy(bucket_arn: str, account_id: str, model_statements: Sequence[dict]) -> dict:
    """What a batch job does as the service role: read its input, write its output, call the model."""
    in_account = {"StringEquals": {"aws:ResourceAccount": account_id}}
    invoke = [s for s in model_statements if s.get("Action") == "bedrock:InvokeModel"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadJobInput",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/{PREFIX}/*/input/*",
                "Condition": in_account,
            },
            {
                "Sid": "WriteJobOutput",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/{PREFIX}/*/output/*",
                "Condition": in_account,
            },
            {
                "Sid": "ListJobFiles",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {**in_account, "StringLike": {"s3:prefix": [f"{PREFIX}/*"]}},
            },
            *invoke,  # an inference profile: the profile and its base model through it (bedrock_statements)
        ],
    }


def dataflow_batch_statements(
    bucket_arn: str, role_arn: str, region: str, account_id: str, model_statements: Sequence[dict]
) -> list[dict]:
    """What the backfill does as the dataflow's role: write job files and read outputs under the prefix, create,
    follow, list and stop jobs, and hand the service role (only it, only to Bedrock) to the jobs it creates."""
    jobs = job_arn_pattern(region, account_id)
    models: list[str] = []
    for st in model_statements:
        if st.get("Action") == "bedrock:InvokeModel":
            resource = st["Resource"]
            models.extend(resource if isinstance(resource, list) else [resource])
    return [
        {
            "Sid": "BatchJobFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{bucket_arn}/{PREFIX}/*",
        },
        {
            "Sid": "BatchJobFilesList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [f"{PREFIX}/*"]}},
        },
        {
            "Sid": "CreateBatchJobs",
            "Effect": "Allow",
            "Action": "bedrock:CreateModelInvocationJob",
            "Resource": [jobs, *models],
        },
        {"Sid": "FollowBatchJobs", "Effect": "Allow", "Action": list(JOB_ACTIONS), "Resource": jobs},
        {"Sid": "ListBatchJobs", "Effect": "Allow", "Action": LIST_ACTION, "Resource": "*"},
        {
            "Sid": "PassBatchRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role_arn,
            "Condition": {"StringEquals": {"iam:PassedToService": BEDROCK}},
        },
    ]


@dataclass
class BatchStore:
    bucket: pulumi.Output[str]
    arn: pulumi.Output[str]
    job_url: pulumi.Output[str]  # BACKFILL_JOB_URL
    role_arn: pulumi.Output[str]  # BACKFILL_ROLE_ARN
    ready: list[pulumi.Resource]


def build_batch_store(
    name: str, region: str, account_id: str, model_statements: Sequence[dict], expire_days: int, tags: dict[str, str]
) -> BatchStore:
    if expire_days < MIN_EXPIRE_DAYS:
        raise ValueError(
            f"batchJobFilesExpireDays={expire_days} is under {MIN_EXPIRE_DAYS}: a batch job may run 7 days and "
            "its output must outlive it"
        )
    private = private_bucket(f"{name}-batch", tags)
    bucket, encryption, block = private.bucket, private.encryption, private.block
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        f"{name}-batch",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-batch-job-files",
                "status": "Enabled",
                "filter": {"prefix": f"{PREFIX}/"},
                "expiration": {"days": expire_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
            }
        ],
    )
    role = aws.iam.Role(
        f"{name}-bedrock-batch",
        name=f"{name}-bedrock-batch",
        description=f"{name}: assumed by Bedrock for the backfill's batch inference jobs",
        assume_role_policy=to_json(batch_trust_policy(region, account_id)),
        max_session_duration=3600,
        tags=tags,
    )
    aws.iam.RolePolicy(
        f"{name}-bedrock-batch",
        role=role.name,
        policy=bucket.arn.apply(lambda arn: to_json(batch_role_policy(arn, account_id, model_statements))),
    )
    return BatchStore(
        bucket=bucket.id,
        arn=bucket.arn,
        job_url=bucket.id.apply(lambda b: f"s3://{b}/{PREFIX}"),
        role_arn=role.arn,
        ready=[encryption, block, lifecycle],
    )
