"""The one interface every limit of the enrichment window speaks: an outcome in, a current value out.

Like Netflix concurrency-limits' `Limit.onSample`: each request's outcome is one `Sample` (success with its
latency, a throttle, or a timeout), fed to `on_sample`, which says whether the limit was cut. What a limit
does with each kind is its own business (AIMD ignores latency, the gradient ignores throttles); the window
(window.py) feeds them all and takes the smallest concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Outcome(Enum):
    SUCCESS = "success"  # answered (valid or not: the server did its work)
    THROTTLE = "throttle"  # refused for the quota
    TIMEOUT = "timeout"  # no answer within BEDROCK_TIMEOUT_S


@dataclass(frozen=True)
class Sample:
    """One request's outcome. `started` is its `time.monotonic()` start: a request sent before a cut measured
    the old window, so it must not cut again."""

    outcome: Outcome
    started: float
    latency_s: float = 0.0
    reviews: int = 1  # reviews the request carried
    in_flight: int = 0  # this worker's requests in flight when it started, itself included
    load: int = 0  # this process's requests in flight when it started (all its workers); 0 = in_flight


class Limit(Protocol):
    """A concurrency limit: how many requests may be in flight."""

    @property
    def current(self) -> int: ...

    def on_sample(self, sample: Sample) -> bool:
        """Learn from one outcome; True when the limit was cut."""
        ...
