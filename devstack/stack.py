"""The whole local stack (Kinesis, OpenSearch, Bedrock) as one object, for the CLI, the demo and tests.

    with LocalStack(StackConfig(shards=2)) as stack:
        os.environ.update(stack.env())

Start-up is all or nothing: if any service fails, the ones already started are stopped and ServiceError
says which and why.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devstack.bedrock import DEFAULT_MODEL_ID
from devstack.processes import (
    ManagedProcess,
    ProcessGroup,
    ServiceError,
    start_bedrock,
    start_kinesis,
    start_opensearch,
)

log = logging.getLogger(__name__)

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass
class StackConfig:
    stream: str = "reviews"
    shards: int = 4
    backend: str = "lexicon"
    bedrock_args: list[str] = field(default_factory=list)  # more `python -m devstack.bedrock` flags
    model_id: str = DEFAULT_MODEL_ID
    kinesis_port: int | None = None
    opensearch_port: int | None = None
    bedrock_port: int | None = None
    log_dir: Path | None = None  # service logs; none kept when unset


class LocalStack:
    """Starts the three services on loopback, creates the stream, and tells clients where they are."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.group = ProcessGroup()
        self.kinesis: ManagedProcess | None = None
        self.opensearch: ManagedProcess | None = None
        self.bedrock: ManagedProcess | None = None

    def _log(self, name: str) -> Path | None:
        if self.config.log_dir is None:
            return None
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.config.log_dir / f"{name}.log"
        path.write_bytes(b"")  # a fresh log per start, so a start-up error shows this run's lines only
        return path

    def start(self) -> LocalStack:
        cfg = self.config
        if cfg.shards < 1:
            raise ServiceError(f"shards must be at least 1, got {cfg.shards}")
        try:
            self.kinesis = self.group.add(start_kinesis(cfg.kinesis_port, self._log("kinesis")))
            self.opensearch = self.group.add(start_opensearch(cfg.opensearch_port, self._log("opensearch")))
            # Batch inference jobs read and write the S3 that moto serves beside Kinesis.
            bedrock_args = ["--s3-endpoint", self.kinesis.url, *cfg.bedrock_args]
            self.bedrock = self.group.add(
                start_bedrock(cfg.bedrock_port, self._log("bedrock"), cfg.backend, bedrock_args)
            )
            create_stream(self.kinesis.url, cfg.stream, cfg.shards)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.group.stop_all()

    def processes(self) -> list[ManagedProcess]:
        return [p for p in (self.kinesis, self.opensearch, self.bedrock) if p is not None]

    def env(self) -> dict[str, str]:
        """The settings that point the producer and the dataflow at this stack."""
        if not (self.kinesis and self.opensearch and self.bedrock):
            raise ServiceError("the local stack is not started")
        return stack_env(self.kinesis.url, self.opensearch.url, self.bedrock.url, self.config)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stack_env(kinesis_url: str, opensearch_url: str, bedrock_url: str, config: StackConfig) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_KINESIS": kinesis_url,
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_url,
        "AWS_ENDPOINT_URL_BEDROCK": bedrock_url,  # the control plane: GetFoundationModel, batch inference jobs
        "AWS_ENDPOINT_URL_S3": kinesis_url,  # moto serves S3 beside Kinesis: batch job input and output
        "OPENSEARCH_URL": opensearch_url,
        "OPENSEARCH_AUTH": "none",
        **FAKE_AWS,
        "KINESIS_STREAM_NAME": config.stream,
        "BEDROCK_MODEL_ID": config.model_id,
    }


def create_stream(kinesis_url: str, name: str, shards: int, timeout: float = 30.0) -> None:
    """Create the stream (if missing) and wait until it is ACTIVE."""
    client = boto3.client(
        "kinesis",
        endpoint_url=kinesis_url,
        region_name=FAKE_AWS["AWS_REGION"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            client.create_stream(StreamName=name, ShardCount=shards)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
            if status == "ACTIVE":
                return
            time.sleep(0.2)
    except (BotoCoreError, ClientError) as err:
        raise ServiceError(f"kinesis: could not create stream {name!r}: {err}") from err
    raise ServiceError(f"kinesis: stream {name!r} not ACTIVE within {timeout:.0f} s")
