"""The demo's progress while the dataflow runs: indexed, dead-lettered, in flight, reviews/s and ETA.

On a terminal it is one live tqdm line; otherwise (a CI log, a pipe) a plain line every `every_s` seconds
and a last one at the end, so a long run is never silent and a log is never flooded. Counts come from
OpenSearch (`_count` of the two indices); what is in flight comes from the dataflow's Prometheus metrics
(records read minus results; Bedrock requests in flight) when it serves them.
"""

from __future__ import annotations

import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

RATE_WINDOW_S = 20.0


@dataclass(frozen=True)
class PipelineMetrics:
    """What the dataflow's /metrics says: records read from Kinesis, Bedrock requests in flight."""

    records_read: int
    requests_in_flight: int


def parse_metrics(text: str) -> PipelineMetrics:
    read = in_flight = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "reviewstream_records_read_total":
                read += sample.value
            elif sample.name == "reviewstream_bedrock_in_flight":
                in_flight += sample.value
    return PipelineMetrics(int(read), int(in_flight))


def fetch_metrics(url: str, timeout: float = 2.0) -> PipelineMetrics | None:
    """The dataflow's metrics, or None while it does not answer (starting, or metrics off)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return parse_metrics(resp.read().decode())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Snapshot:
    indexed: int
    dead: int
    metrics: PipelineMetrics | None = None

    @property
    def done(self) -> int:
        return self.indexed + self.dead

    @property
    def in_flight(self) -> int | None:
        """Reviews read but not yet indexed or dead-lettered."""
        return None if self.metrics is None else max(0, self.metrics.records_read - self.done)


def _duration(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Feed it snapshots with `update`; it draws or prints them."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        tty: bool | None = None,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.tty = stream.isatty() if tty is None else tty
        self._history: deque[tuple[float, int]] = deque()
        self._printed_at: float | None = None
        self._last: Snapshot | None = None
        self._bar = (
            tqdm(total=total, unit="review", desc="indexed or dead-lettered", file=stream, dynamic_ncols=True)
            if self.tty
            else None
        )

    def rate(self) -> float | None:
        """Reviews per second over the last RATE_WINDOW_S seconds (None before two snapshots)."""
        if len(self._history) < 2:
            return None
        (t0, n0), (t1, n1) = self._history[0], self._history[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def line(self, snap: Snapshot) -> str:
        parts = [f"indexed {snap.indexed}/{self.total}", f"dead-lettered {snap.dead}"]
        remaining = max(0, self.total - snap.done)
        in_flight = snap.in_flight
        if in_flight is not None and snap.metrics is not None:
            parts.append(f"in flight {in_flight} ({snap.metrics.requests_in_flight} Bedrock requests)")
        else:
            parts.append("in flight 0" if remaining == 0 else "in flight ?")
        rate = self.rate()
        parts.append(f"{rate:.1f} reviews/s" if rate is not None else "- reviews/s")
        if remaining == 0:
            parts.append("ETA 0:00")
        elif rate:
            parts.append(f"ETA {_duration(remaining / rate)}")
        else:
            parts.append("ETA ?")
        parts.append(f"elapsed {_duration(self.clock() - self.started)}")
        return " | ".join(parts)

    def update(self, snap: Snapshot) -> None:
        now = self.clock()
        finished = self._last is not None and min(self._last.done, snap.done) >= self.total
        if not finished:  # once everything is done, the rate stays what it was at the end
            self._history.append((now, snap.done))
        while len(self._history) > 2 and self._history[0][0] < now - RATE_WINDOW_S:
            self._history.popleft()
        self._last = snap
        if self._bar is not None:
            self._bar.update(max(0, min(self.total, snap.done) - self._bar.n))
            self._bar.set_postfix_str(self.line(snap).split(" | ", 1)[1], refresh=True)
        elif self._printed_at is None or now - self._printed_at >= self.every_s:
            self._print(snap)

    def _print(self, snap: Snapshot) -> None:
        self._printed_at = self.clock()
        print("progress: " + self.line(snap), file=self.stream, flush=True)

    def close(self) -> None:
        """The final state: the bar closed on a terminal, one last line otherwise (unless just printed)."""
        if self._bar is not None:
            self._bar.close()
        elif self._last is not None and self._printed_at != self.clock():
            self._print(self._last)
