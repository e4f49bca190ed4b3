"""The demo's progress line: plain periodic lines off a terminal, counts and in-flight from real metrics text."""

from __future__ import annotations

import io

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

from devstack.processes import LOOPBACK, free_port
from devstack.progress import PipelineMetrics, Progress, Snapshot, fetch_metrics, parse_metrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def _registry(read: dict[str, int], in_flight: dict[str, int]) -> CollectorRegistry:
    """The dataflow's metric names and labels (dataflow/metrics.py), in a registry of their own."""
    registry = CollectorRegistry()
    records = Counter("reviewstream_records_read_total", "Kinesis records read", ["shard"], registry=registry)
    gauge = Gauge("reviewstream_bedrock_in_flight", "Bedrock requests in flight", ["worker"], registry=registry)
    other = Counter("reviewstream_reviews_enriched_total", "Reviews enriched by the model", registry=registry)
    other.inc(99)
    for shard, n in read.items():
        records.labels(shard=shard).inc(n)
    for worker, n in in_flight.items():
        gauge.labels(worker=worker).set(n)
    return registry


def test_metrics_text_gives_records_read_and_requests_in_flight() -> None:
    text = generate_latest(_registry({"shardId-0": 30, "shardId-1": 25}, {"0": 3, "1": 1})).decode()
    assert parse_metrics(text) == PipelineMetrics(records_read=55, requests_in_flight=4)
    assert parse_metrics("") == PipelineMetrics(0, 0)


def test_fetch_metrics_from_a_live_endpoint_and_a_dead_one() -> None:
    registry = _registry({"shardId-0": 7}, {"0": 2})
    server, thread = start_http_server(0, addr=LOOPBACK, registry=registry)
    try:
        url = f"http://{LOOPBACK}:{server.server_port}/metrics"
        assert fetch_metrics(url) == PipelineMetrics(7, 2)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert fetch_metrics(f"http://{LOOPBACK}:{free_port()}/metrics", timeout=0.5) is None


def test_plain_lines_off_a_terminal_at_the_chosen_interval() -> None:
    out = io.StringIO()  # not a TTY
    clock = FakeClock()
    progress = Progress(100, out, every_s=10.0, clock=clock)
    assert not progress.tty
    for second in range(25):  # 2 reviews/s; 3 dead letters once 30 are done; 10 read but not yet written
        done = 2 * second
        dead = 3 if done >= 30 else 0
        progress.update(Snapshot(done - dead, dead, PipelineMetrics(done + 10, 4)))
        clock.now += 1.0
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines  # at 0 s, 10 s, 20 s, and the last state at close
    assert all(line.startswith("progress: ") for line in lines)
    assert lines[0] == (
        "progress: indexed 0/100 | dead-lettered 0 | in flight 10 (4 Bedrock requests) | - reviews/s | ETA ? "
        "| elapsed 0:00"
    )
    assert lines[2] == (
        "progress: indexed 37/100 | dead-lettered 3 | in flight 10 (4 Bedrock requests) | 2.0 reviews/s | ETA 0:30 "
        "| elapsed 0:20"
    )
    assert lines[3].startswith("progress: indexed 45/100 | dead-lettered 3 |") and "elapsed 0:25" in lines[3]


def test_unknown_in_flight_and_the_finished_state() -> None:
    out = io.StringIO()
    clock = FakeClock()
    progress = Progress(10, out, every_s=5.0, clock=clock)
    progress.update(Snapshot(0, 0, None))  # the dataflow's metrics do not answer yet
    clock.now += 5.0
    progress.update(Snapshot(8, 2, PipelineMetrics(10, 0)))
    clock.now += 5.0
    progress.update(Snapshot(8, 2, None))  # the dataflow has exited: its metrics are gone
    progress.close()  # printed at this very instant already: no duplicate line
    lines = out.getvalue().splitlines()
    assert "in flight ? |" in lines[0]
    assert lines[1] == (
        "progress: indexed 8/10 | dead-lettered 2 | in flight 0 (0 Bedrock requests) | 2.0 reviews/s | ETA 0:00 "
        "| elapsed 0:05"
    )
    # Finished: nothing can be in flight, and the rate is the one at the end, not diluted by idle time.
    assert (
        lines[2] == "progress: indexed 8/10 | dead-lettered 2 | in flight 0 | 2.0 reviews/s | ETA 0:00 | elapsed 0:10"
    )
    assert len(lines) == 3


def test_a_terminal_gets_one_live_bar() -> None:
    out = io.StringIO()
    clock = FakeClock()
    progress = Progress(50, out, tty=True, clock=clock)
    progress.update(Snapshot(10, 1, PipelineMetrics(20, 2)))
    clock.now += 2.0
    progress.update(Snapshot(20, 2, PipelineMetrics(30, 2)))
    progress.close()
    drawn = out.getvalue()
    assert "\r" in drawn and "progress:" not in drawn  # redrawn in place, not printed line by line
    assert "22/50" in drawn and "dead-lettered 2" in drawn and "in flight 8 (2 Bedrock requests)" in drawn
