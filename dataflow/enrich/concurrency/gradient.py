"""A latency-based concurrency limit (Vegas / Gradient style) for the Bedrock caller.

AIMD only reacts to throttling. A server that queues instead of refusing (llama.cpp behind one slot, or Bedrock
near its capacity) answers every request, only later and later, until the client's timeout fires: the window
must follow latency too. This limit compares each round's average latency with the best round average seen
recently (the latency of an uncongested server) and:

- grows per round (about one latency) while latency stays within `tolerance` x the best: by one, and until
  the first cut by sqrt(window) while latency is flat (within `flat` x the best; Netflix's Gradient2 allows a
  root of the limit as queue): from 2 a flat server gets a window of 32 in ~9 rounds, not 30. Like TCP's
  slow start it ends at the first sign of congestion: once cut, latency noise (a loaded machine, review
  lengths) could pass for flat and a root-sized step overshoots a queueing server, so growth is by one;
- shrinks in proportion (never below half per round) when the round's latency is above that;
- halves on a timeout (once per congestion event: only a request started after the last cut cuts again).

Latency is normalised per review: a request carrying several reviews answers for each of them (the answer's
length, hence the model's time, grows with the reviews it holds); the output per review is bounded and of one
shape (one sentence and a label), so per review is the unit that stays comparable. A round is the average of
`max(min_samples, window)` answers, which smooths review-length noise that a single-sample minimum would turn
into a permanently low baseline. Best rounds older than `baseline_s` are forgotten, so a lasting change in the
workload (longer reviews, another model) becomes the new normal instead of shrinking the window for good.
A round grows the window only when the window was actually used (a caller with two reviews to send does not
earn a window of 64).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.enrich.concurrency.limit import Outcome, Sample


@dataclass
class GradientLimit:
    """A concurrency window between `minimum` and `maximum` that follows latency; starts at `initial`."""

    maximum: int
    minimum: int = 1
    initial: int = 2
    tolerance: float = 1.5
    flat: float = 1.1
    min_samples: int = 3
    baseline_s: float = 300.0
    timeout_factor: float = 0.5
    clock: Callable[[], float] = time.monotonic
    value: float = field(init=False)
    decreases: int = field(init=False, default=0)
    last_ratio: float = field(init=False, default=1.0)
    _round: list[float] = field(init=False, default_factory=list)
    _round_busy: bool = field(init=False, default=False)
    _best: deque[tuple[float, float]] = field(init=False, default_factory=deque)
    _last_cut: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.value = float(min(self.maximum, max(self.minimum, self.initial)))

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.value))

    def baseline(self) -> float | None:
        """The best (lowest) round average latency per review still remembered, or None before the first round."""
        self._forget()
        return min((avg for _, avg in self._best), default=None)

    def on_sample(self, sample: Sample) -> bool:
        """Learn from an answer's latency, cut on a timeout (True when cut); throttles are AIMD's."""
        if sample.outcome is Outcome.SUCCESS:
            cuts = self.decreases
            self.on_answer(sample.latency_s, sample.reviews, sample.in_flight, sample.started)
            return self.decreases > cuts
        if sample.outcome is Outcome.TIMEOUT:
            return self.on_timeout(sample.started)
        return False

    def on_answer(self, latency_s: float, reviews: int, in_flight: int, request_started: float) -> None:
        """One answered request: its latency, how many reviews it carried and how many requests were in flight.

        Requests started before the last cut measured the old window: they neither count nor cut again."""
        if request_started < self._last_cut:
            return
        self._round.append(latency_s / max(1, reviews))
        self._round_busy = self._round_busy or in_flight >= self.current
        if len(self._round) >= max(self.min_samples, self.current):
            self._end_round()

    def on_timeout(self, request_started: float) -> bool:
        """A timeout is congestion until proven otherwise: cut once per event; True when the window was cut."""
        if request_started < self._last_cut:
            return False
        self.value = max(float(self.minimum), self.value * self.timeout_factor)
        self._last_cut = self.clock()
        self.decreases += 1
        self._round.clear()
        self._round_busy = False
        return True

    def _forget(self) -> None:
        horizon = self.clock() - self.baseline_s
        while self._best and self._best[0][0] < horizon:
            self._best.popleft()

    def _end_round(self) -> None:
        avg = sum(self._round) / len(self._round)
        busy = self._round_busy
        self._round.clear()
        self._round_busy = False
        best = self.baseline()
        # Keep the remembered rounds increasing in latency: a better round makes every worse, older one useless.
        while self._best and self._best[-1][1] >= avg:
            self._best.pop()
        self._best.append((self.clock(), avg))
        if best is None or best <= 0:
            return
        self.last_ratio = avg / best
        if self.last_ratio > self.tolerance:
            self.value = max(float(self.minimum), self.value * max(0.5, self.tolerance / self.last_ratio))
            self._last_cut = self.clock()
            self.decreases += 1
        elif busy:
            slow_start = self.decreases == 0 and self.last_ratio <= self.flat
            step = max(1.0, math.sqrt(self.value)) if slow_start else 1.0
            self.value = min(float(self.maximum), self.value + step)
