"""The Kinesis source: every shard of a stream, read by Bytewax workers, checkpointed per shard.

In: the Kinesis stream (ListShards, GetShardIterator, GetRecords); the enrichment room to hold back for
(`dataflow.channels.backpressure.BufferGauge`) and the heartbeat, both passed in by `dataflow.pipeline`.
Out: `KinesisRecord`s (dataflow/records.py), and per partition a snapshot of each shard's position.

- source.py       `KinesisSource` (the Bytewax source: its partitions, the Kinesis client) and the drain
                  ledger it shares with them
- partition.py    `KinesisPartition`: one virtual partition's shards: discovery, resharding order,
                  positions, hold-back, stop at end
- reader.py       the Kinesis reader of one shard: GetRecords, poll pacing, retry backoff
- shards.py       shard ownership (stable hash), listing, where a shard with no checkpoint starts
- drain_ledger.py which shards this process drained, and whether its partitions caught up
- hold_back.py    how long to wait while the enrichment buffers are full
"""

from dataflow.kinesis_source.drain_ledger import DrainLedger
from dataflow.kinesis_source.partition import KinesisPartition
from dataflow.kinesis_source.shards import shard_owner
from dataflow.kinesis_source.source import KinesisSource, kinesis_client

__all__ = ["DrainLedger", "KinesisPartition", "KinesisSource", "kinesis_client", "shard_owner"]
