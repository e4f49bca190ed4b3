"""The Kinesis stream the producer writes to, encrypted with a customer-managed, rotating KMS key.

A customer-managed key (rather than alias/aws/kinesis) lets the dataflow role be granted `kms:Decrypt` on
exactly this key and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class Stream:
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]


def build_stream(name: str, capacity_mode: str, shard_count: int, retention_hours: int, tags: dict[str, str]) -> Stream:
    key = aws.kms.Key(
        f"{name}-stream",
        description=f"{name}: Kinesis stream encryption",
        enable_key_rotation=True,
        deletion_window_in_days=7,
        tags=tags,
    )
    aws.kms.Alias(f"{name}-stream", name=f"alias/{name}-stream", target_key_id=key.key_id)
    stream = aws.kinesis.Stream(
        f"{name}-reviews",
        name=f"{name}-reviews",
        stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(stream_mode=capacity_mode),
        # Only a provisioned stream takes a shard count; on-demand scales by itself.
        shard_count=shard_count if capacity_mode == "PROVISIONED" else None,
        retention_period=retention_hours,
        encryption_type="KMS",
        kms_key_id=key.arn,
        shard_level_metrics=["IncomingRecords", "IteratorAgeMilliseconds"],
        tags=tags,
    )
    return Stream(name=stream.name, arn=stream.arn, key_arn=key.arn)
