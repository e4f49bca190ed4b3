"""Kinesis Data Streams input: a Bytewax `FixedPartitionedSource` over every shard of a stream.

A fixed number of virtual partitions (KINESIS_PARTITIONS) each own the shards whose id hashes to them, so the
partitioning never changes when the stream is resharded. Bytewax builds the flow once per process and asks
this source for the partitions its workers own; the source hands each of them what the process shares: the
drain ledger (which shards are drained, created here), the enrichment room to hold back for, the heartbeat and
whom to tell how wide the stream is (all three created by `dataflow.pipeline.build_flow`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from bytewax.inputs import FixedPartitionedSource

from dataflow.channels.backpressure import BufferGauge
from dataflow.heartbeat import Heartbeat
from dataflow.kinesis_source.drain_ledger import DrainLedger
from dataflow.kinesis_source.partition import KinesisPartition, ShardPositions
from dataflow.records import KinesisRecord
from dataflow.settings import Settings


def part_name(index: int) -> str:
    return f"kinesis-{index}"


def kinesis_client(settings: Settings) -> Any:
    """A boto3 Kinesis client; AWS_ENDPOINT_URL_KINESIS points it at a local emulator.

    botocore's own retries are off (one HTTP request per call): they sleep inside `next_batch`, and a worker
    that sleeps there holds back the epoch of every worker, whose sources then spin in Bytewax's scheduler until
    it returns (a GetRecords outage: 3-5 s per call, one worker at 100% of a core meanwhile). The partition
    retries instead, after a backoff it sleeps through `next_awake` (reader.py).
    """
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=4,
    )
    return boto3.session.Session().client("kinesis", region_name=settings.aws_region, config=config)


class KinesisSource(FixedPartitionedSource[KinesisRecord, ShardPositions]):
    """Every shard of `KINESIS_STREAM_NAME`, split over KINESIS_PARTITIONS virtual partitions."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[Settings], Any] = kinesis_client,
        *,
        buffers: BufferGauge | None = None,
        heartbeat: Heartbeat | None = None,
        on_listing: Callable[[int], None] | None = None,
    ) -> None:
        """`on_listing` is told the stream's open shards after every listing (the key routing's `auto`)."""
        self._settings = settings
        self._client_factory = client_factory
        self._buffers = buffers
        self._heartbeat = heartbeat
        self._on_listing = on_listing
        self.ledger = DrainLedger()

    def list_parts(self) -> list[str]:
        return [part_name(i) for i in range(self._settings.kinesis_partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: ShardPositions | None) -> KinesisPartition:
        index = int(for_part.rsplit("-", 1)[1])
        return KinesisPartition(
            self._client_factory(self._settings),
            self._settings,
            index,
            resume_state,
            ledger=self.ledger,
            buffers=self._buffers,
            heartbeat=self._heartbeat,
            on_listing=self._on_listing,
        )
