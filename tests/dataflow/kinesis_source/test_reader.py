"""The reader of one shard: its poll pacing."""

from __future__ import annotations

from dataflow.kinesis_source.reader import MIN_POLL_S, ShardReader, poll_interval


def test_the_idle_back_off_is_bounded_however_long_a_shard_stays_idle() -> None:
    reader = ShardReader("shardId-000000000000", quiet_pages=100_000)  # a day and more of empty pages
    assert poll_interval(reader, 0.25, 1.0) == 1.0
    assert poll_interval(ShardReader("s", quiet_pages=1), 0.25, 1.0) == MIN_POLL_S  # not caught up yet
    assert poll_interval(ShardReader("s", quiet_pages=2), 0.25, 1.0) == 0.25
    assert poll_interval(ShardReader("s", quiet_pages=3), 0.25, 0.1) == 0.25  # the maximum never undercuts it
    assert poll_interval(ShardReader("s", quiet_pages=9, behind=True), 0.25, 1.0) == 0.25  # newer records exist
