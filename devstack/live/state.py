"""One look at the pipeline: OpenSearch's two indices and the flow's metrics, plus the history the rates need."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from devstack.live.flow_metrics import FlowMetrics

SENTIMENTS = ("positive", "negative")
LATEST = 8
# Bars per chart: review dates by day up to two months, by month up to five years; arrivals by a few seconds.
CALENDAR = ((62 * 86400, "day"), (5 * 365 * 86400, "month"), (1e18, "year"))
FIXED = ((60, "2s"), (300, "10s"), (1800, "1m"), (7200, "5m"), (1e18, "1h"))


@dataclass
class LiveState:
    at: float
    indexed: int = 0
    dead: int = 0
    dead_by_reason: list[tuple[str, str, int]] = field(default_factory=list)  # stage, error type, count
    by_review_date: list[tuple[str, dict[str, int]]] = field(default_factory=list)  # period -> sentiment counts
    by_arrival: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    latest: list[dict[str, Any]] = field(default_factory=list)
    metrics: FlowMetrics | None = None
    rate_per_s: float | None = None
    throughput: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, reviews/s)
    lag: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, ms behind)

    @property
    def done(self) -> int:
        return self.indexed + self.dead

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "done": self.done}


def _interval(span_s: float, steps: tuple[tuple[float, str], ...]) -> str:
    return next((name for limit, name in steps if span_s <= limit), steps[-1][1])


def _histogram(client: OpenSearch, index: str, field_name: str) -> list[tuple[str, dict[str, int]]]:
    """Sentiment counts per period of `field_name`, the period chosen from the span (about 10-60 bars)."""
    span_aggs = {"lo": {"min": {"field": field_name}}, "hi": {"max": {"field": field_name}}}
    bounds = client.search(index=index, body={"size": 0, "aggs": span_aggs})["aggregations"]
    if bounds["lo"]["value"] is None:
        return []
    span_s = (bounds["hi"]["value"] - bounds["lo"]["value"]) / 1000
    if field_name == "date_time":
        spec = {"calendar_interval": _interval(span_s, CALENDAR)}
    else:
        spec = {"fixed_interval": _interval(span_s, FIXED)}
    body = {
        "size": 0,
        "aggs": {
            "t": {
                "date_histogram": {"field": field_name, **spec},
                "aggs": {"s": {"terms": {"field": "sentiment", "size": 10}}},
            }
        },
    }
    buckets = client.search(index=index, body=body)["aggregations"]["t"]["buckets"]
    cut = {"day": 10, "month": 7, "year": 4}.get(spec.get("calendar_interval", ""), 19)
    return [
        (b["key_as_string"][:cut].replace("T", " "), {s["key"]: int(s["doc_count"]) for s in b["s"]["buckets"]})
        for b in buckets
    ]


def read_indices(client: OpenSearch, index: str, dlq_index: str, state: LiveState) -> None:
    """Fill `state` from the indices; an index that does not exist yet counts as empty."""
    client.indices.refresh(index=f"{index},{dlq_index}", ignore_unavailable=True)
    indexed, dead = _count(client, index), _count(client, dlq_index)
    if indexed is not None:
        state.indexed = indexed
        state.by_review_date = _histogram(client, index, "date_time")
        state.by_arrival = _histogram(client, index, "processed_at")
        hits = client.search(
            index=index,
            body={
                "size": LATEST,
                "sort": [{"processed_at": "desc"}],
                "_source": ["review_id", "summary", "sentiment", "label", "processed_at", "latency_ms"],
            },
        )["hits"]["hits"]
        state.latest = [h["_source"] for h in hits]
    if dead is not None:
        state.dead = dead
        body = {
            "size": 0,
            "aggs": {
                "stage": {
                    "terms": {"field": "stage", "size": 20},
                    "aggs": {"type": {"terms": {"field": "error_type", "size": 50}}},
                }
            },
        }
        aggs = client.search(index=dlq_index, body=body)["aggregations"]["stage"]["buckets"]
        state.dead_by_reason = sorted(
            (stage["key"], kind["key"], int(kind["doc_count"])) for stage in aggs for kind in stage["type"]["buckets"]
        )


def _count(client: OpenSearch, index: str) -> int | None:
    """The index's document count, or None while it does not exist (asked so that a 404 is not logged)."""
    body = client.count(index=index, ignore=404)
    return int(body["count"]) if "count" in body else None


class History:
    """What the rates and the time series need from earlier looks: (monotonic time, done, lag)."""

    def __init__(self, window_s: float = 20.0, keep: int = 600) -> None:
        self.window_s = window_s
        self.started = time.monotonic()
        self.points: deque[tuple[float, int]] = deque(maxlen=keep)
        self.throughput: deque[tuple[float, float]] = deque(maxlen=keep)
        self.lag: deque[tuple[float, float]] = deque(maxlen=keep)

    def add(self, state: LiveState, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.points.append((now, state.done))
        recent = [(t, n) for t, n in self.points if now - t <= self.window_s]
        if len(recent) >= 2 and recent[-1][0] > recent[0][0]:
            state.rate_per_s = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
            self.throughput.append((now - self.started, state.rate_per_s))
        if state.metrics is not None:
            self.lag.append((now - self.started, state.metrics.lag_ms))
        state.throughput, state.lag = list(self.throughput), list(self.lag)


def look(
    client: OpenSearch, index: str, dlq_index: str, metrics: FlowMetrics | None, history: History | None = None
) -> LiveState:
    state = LiveState(at=datetime.now().timestamp(), metrics=metrics)
    with contextlib.suppress(TransportError):  # OpenSearch starting or busy: this look shows the metrics alone
        read_indices(client, index, dlq_index, state)
    if history is not None:
        history.add(state)
    return state
