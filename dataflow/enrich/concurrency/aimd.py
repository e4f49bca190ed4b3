"""AIMD: the concurrency limit that answers throttling.

Throttling means the quota is exhausted *now*: halving the window backs off fast, and growing it by one
request per window of successes finds the quota's edge again without a storm of 429s. Only a request that
started after the last cut may cut again, so one burst of throttles (all sent with the old window) halves
the window once, not once per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.enrich.concurrency.limit import Outcome, Sample


@dataclass
class AimdLimit:
    """A concurrency window between `minimum` and `maximum` requests."""

    maximum: int
    minimum: int = 1
    decrease_factor: float = 0.5
    clock: Callable[[], float] = time.monotonic
    value: float = field(init=False)
    last_decrease: float = field(init=False, default=float("-inf"))
    decreases: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.value = float(self.maximum)

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.value))

    def on_sample(self, sample: Sample) -> bool:
        """Grow on a success, cut on a throttle (once per congestion event); a timeout is the gradient's."""
        if sample.outcome is Outcome.SUCCESS:
            self.on_success()
            return False
        if sample.outcome is Outcome.THROTTLE:
            return self.on_throttle(sample.started)
        return False

    def on_success(self) -> None:
        """Additive increase: about +1 per full window of successful requests."""
        self.value = min(float(self.maximum), self.value + 1.0 / max(1.0, self.value))

    def on_throttle(self, request_started: float) -> bool:
        """Multiplicative decrease, once per congestion event; returns True when the window was cut."""
        if request_started < self.last_decrease:
            return False
        self.value = max(float(self.minimum), self.value * self.decrease_factor)
        self.last_decrease = self.clock()
        self.decreases += 1
        return True
