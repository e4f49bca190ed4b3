"""The job runner's S3: boto3 pointed at the local stack's S3 (moto), used from worker threads.

Bedrock reads every `.jsonl` object under the input URI (a folder, nested folders included) or the one object it
names, and writes `<output URI>/<job id>/<input path relative to the input folder>.out` plus `manifest.json.out`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack.bedrock.batch.jobs import REGION


class StorageError(Exception):
    """S3 refused or could not be reached; the message is what the job's `message` says."""


@dataclass(frozen=True)
class InputFile:
    key: str
    size: int
    relative: str  # the path under the input folder, which names the output file


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class Storage:
    """Synchronous S3 calls for one server (call them through asyncio.to_thread)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=REGION,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}),
        )

    def input_files(self, uri: str) -> list[InputFile]:
        """The .jsonl objects the input URI names; StorageError if the bucket cannot be read."""
        bucket, key = split_uri(uri)
        try:
            if key and not key.endswith("/"):
                try:
                    head = self.client.head_object(Bucket=bucket, Key=key)
                    if not key.endswith(".jsonl"):
                        raise StorageError(f"The input file {uri} must have the .jsonl extension.")
                    return [InputFile(key, int(head["ContentLength"]), key.rsplit("/", 1)[-1])]
                except ClientError as err:
                    if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                        raise
                key += "/"
            files = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith(".jsonl"):
                        files.append(InputFile(obj["Key"], int(obj["Size"]), obj["Key"][len(key) :]))
            return sorted(files, key=lambda f: f.key)
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"Unable to read the input S3 location {uri}: {_reason(err)}") from err

    def check_output(self, uri: str) -> None:
        bucket, _ = split_uri(uri)
        try:
            self.client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"Unable to write to the output S3 location {uri}: {_reason(err)}") from err

    def read(self, bucket: str, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"Unable to read s3://{bucket}/{key}: {_reason(err)}") from err

    def write(self, uri: str, body: bytes) -> None:
        bucket, key = split_uri(uri)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body)
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"Unable to write {uri}: {_reason(err)}") from err


def output_prefix(output_uri: str, job_id: str) -> str:
    return output_uri.rstrip("/") + "/" + job_id + "/"


def _reason(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".rstrip(": ")
    return str(err)
