"""The S3 bucket of the dataflow's recovery store (dataflow/recovery): the durable copy of Bytewax's partitions.

State that is not pinned to a pod's volume (and so to a zone) is what lets the cluster change size, lose a pod,
a node or a zone, and resume from where it stopped. Versioned: a partition overwritten by mistake can be
restored from its previous version for a week (docs/DEPLOY.md "Operating it"). Private, TLS only, encrypted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.iam import to_json

PREFIX = "reviewstream-dataflow"  # one prefix per StatefulSet: RECOVERY_STORE_URL = s3://<bucket>/<prefix>
NONCURRENT_DAYS = 7


@dataclass
class RecoveryStore:
    bucket: pulumi.Output[str]
    arn: pulumi.Output[str]
    url: pulumi.Output[str]
    ready: list[pulumi.Resource]  # what must exist before a pod writes (versioning, encryption, access block)


def tls_only_policy(bucket_arn: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    block: aws.s3.BucketPublicAccessBlock


def private_bucket(resource: str, tags: dict[str, str]) -> PrivateBucket:
    """A bucket no one outside the account reads: SSE-S3, every public access blocked, TLS only. `resource` is
    the logical name of its resources (and its name's prefix), kept as it was so no stack replaces them."""
    bucket = aws.s3.Bucket(resource, bucket_prefix=f"{resource}-", force_destroy=False, tags=tags)
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        resource,
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
    )
    block = aws.s3.BucketPublicAccessBlock(
        resource,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    aws.s3.BucketPolicy(
        resource,
        bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: to_json(tls_only_policy(arn))),
        opts=pulumi.ResourceOptions(depends_on=[block]),
    )
    return PrivateBucket(bucket, encryption, block)


def build_recovery_store(name: str, tags: dict[str, str]) -> RecoveryStore:
    private = private_bucket(f"{name}-recovery", tags)
    bucket, encryption, block = private.bucket, private.encryption, private.block
    versioning = aws.s3.BucketVersioning(
        f"{name}-recovery", bucket=bucket.id, versioning_configuration={"status": "Enabled"}
    )
    # Every backup pass writes a new version of the partitions that moved: keep the old ones a week, not forever.
    aws.s3.BucketLifecycleConfiguration(
        f"{name}-recovery",
        bucket=bucket.id,
        rules=[
            {
                "id": "expire-old-partition-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
            }
        ],
        opts=pulumi.ResourceOptions(depends_on=[versioning]),
    )
    return RecoveryStore(
        bucket=bucket.id,
        arn=bucket.arn,
        url=bucket.id.apply(lambda b: f"s3://{b}/{PREFIX}"),
        ready=[versioning, encryption, block],
    )
