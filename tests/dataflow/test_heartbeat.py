"""The worker heartbeat: beaten by the Kinesis source, configured from Settings, read by the liveness command."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import boto3

from dataflow import heartbeat
from dataflow.kinesis_source import DrainLedger, KinesisPartition
from dataflow.pipeline import build_flow
from dataflow.settings import load_settings
from tests.dataflow.helpers import settings
from tests.fakes import FakeBedrock


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_one_stuck_worker_ages_the_file_while_others_beat(tmp_path: Path) -> None:
    clock = Clock()
    beat = heartbeat.Heartbeat(str(tmp_path / "hb"), clock=clock)
    stuck_ready = threading.Event()

    def stuck_worker() -> None:
        beat.beat()  # beats once, then never again
        stuck_ready.set()

    t = threading.Thread(target=stuck_worker)
    t.start()
    t.join()
    assert stuck_ready.is_set()
    for _ in range(600):  # the healthy worker keeps polling for 10 minutes
        clock.now += 1
        beat.beat()
    assert heartbeat.age_s(str(tmp_path / "hb"), now=clock.now) >= 599


def test_healthy_workers_keep_the_file_fresh_and_writes_are_rate_limited(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "hb"
    beat = heartbeat.Heartbeat(str(path), clock=clock)
    beat.beat()
    first = path.read_text()
    clock.now += 0.5
    beat.beat()
    assert path.read_text() == first  # not rewritten within a second
    clock.now += 0.6
    beat.beat()
    assert heartbeat.age_s(str(path), now=clock.now) == 0


def test_off_without_a_file(tmp_path: Path) -> None:
    beat = heartbeat.Heartbeat(None)
    beat.beat()
    assert list(tmp_path.iterdir()) == []
    assert load_settings({}).heartbeat_file is None
    assert load_settings({"HEARTBEAT_FILE": "/tmp/heartbeat"}).heartbeat_file == "/tmp/heartbeat"


def test_the_kinesis_source_beats_on_every_poll(tmp_path: Path) -> None:
    """Every `next_batch` beats, idle or not: a worker whose source is polled is alive."""
    clock = Clock()
    path = tmp_path / "hb"
    part = KinesisPartition(
        NoShards(), settings(), 0, None, ledger=DrainLedger(), heartbeat=heartbeat.Heartbeat(str(path), clock=clock)
    )
    assert not path.exists()
    list(part.next_batch())
    assert heartbeat.age_s(str(path), now=clock.now) == 0
    clock.now += 5
    list(part.next_batch())
    assert heartbeat.age_s(str(path), now=clock.now) == 0


def test_build_flow_gives_the_source_the_heartbeat_of_HEARTBEAT_FILE(
    tmp_path: Path, kinesis_server, monkeypatch
) -> None:
    """The production wiring: HEARTBEAT_FILE, read once with the other settings, reaches every partition."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", kinesis_server.url)
    stream = f"hb-{uuid.uuid4().hex[:8]}"
    boto3.client("kinesis", endpoint_url=kinesis_server.url).create_stream(StreamName=stream, ShardCount=1)
    on = tmp_path / "on"
    for env in ({"HEARTBEAT_FILE": str(on)}, {}):
        flow = build_flow(settings(KINESIS_STREAM_NAME=stream, **env), bedrock_client_factory=FakeBedrock().factory())
        source = flow.substeps[0].source
        part = source.build_part("kinesis", source.list_parts()[0], None)
        list(part.next_batch())
    assert on.exists() and list(tmp_path.iterdir()) == [on]  # off without HEARTBEAT_FILE: nothing written


class NoShards:
    """A Kinesis client of a stream with no shard (the partition only lists)."""

    def list_shards(self, **kwargs: object) -> dict:
        return {"Shards": []}
