"""A latency-based concurrency limit for the Bedrock caller: shrink when *our* load raises latency.

AIMD only reacts to throttling. A server that queues instead of refusing (llama.cpp behind one slot, or Bedrock
near its capacity) answers every request, only later and later, until the client's timeout fires: the window
must follow latency too. But a hosted model's latency also varies on its own (p99 several times p50), and a
window that reads that noise as congestion sits at its minimum with the quota half unused (the first version
compared each round with the best round of the last 300 s: with exponential latency a normal round read as
2-4x congested). So the question each round asks is whether latency grows with our in-flight count
(latency_fit.py): the baseline is the latency the server gives at the smallest window, predicted from every
answer of the last `baseline_s` seconds, and a round's average counts as congested only when it is above
`tolerance` x that baseline *and* above it by more than `significance` standard errors of a round of its size.
Each round (about one latency) the limit then:

- grows while the round is within tolerance: by one, and until the first cut by sqrt(window) while latency is
  flat (within `flat` x the baseline; Netflix's Gradient2 allows a root of the limit as queue): from 2 a flat
  server gets a window of 32 in ~9 rounds, not 30. Like TCP's slow start it ends at the first sign of
  congestion: after a cut, a root-sized step overshoots a queueing server, so growth is by one;
- shrinks in proportion (never below half per round) when the round is congested;
- halves on a timeout (once per congestion event: only a request started after the last cut cuts again).

Latency is normalised per review: a request carrying several reviews answers for each of them (the answer's
length, hence the model's time, grows with the reviews it holds). A round is `max(min_samples, window)`
answers of requests started after the last cut (earlier ones measured the old window; they still teach the
fit how latency depends on in-flight). Answers older than `baseline_s` are forgotten, so a lasting change in
the workload (longer reviews, another model) becomes the new normal. A round grows the window only when the
window was actually used (a caller with two reviews to send does not earn a window of 64).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.enrich.concurrency.latency_fit import Fit, fit
from dataflow.enrich.concurrency.limit import Outcome, Sample

MEMORY = 192  # answers the fit keeps at most (also bounded by baseline_s); a few hundred bound its noise


@dataclass(frozen=True)
class Answer:
    at: float
    load: int  # this process's requests in flight at the request's start, itself included (Sample.load)
    per_review_s: float


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
    significance: float = 2.0
    slope_significance: float = 3.0
    clock: Callable[[], float] = time.monotonic
    value: float = field(init=False)
    decreases: int = field(init=False, default=0)
    last_ratio: float = field(init=False, default=1.0)
    _round: list[float] = field(init=False, default_factory=list)
    _round_busy: bool = field(init=False, default=False)
    _answers: deque[Answer] = field(init=False, default_factory=lambda: deque(maxlen=MEMORY))
    _last_cut: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.value = float(min(self.maximum, max(self.minimum, self.initial)))

    @property
    def current(self) -> int:
        return max(self.minimum, int(self.value))

    def fit(self) -> Fit | None:
        """Latency against this process's in-flight count over the remembered answers; None before three."""
        horizon = self.clock() - self.baseline_s
        while self._answers and self._answers[0].at < horizon:
            self._answers.popleft()
        return fit([(a.load, a.per_review_s) for a in self._answers], float(self.minimum), self.slope_significance)

    def baseline(self) -> float | None:
        """The per-review latency expected at the smallest window, or None before the first answers."""
        result = self.fit()
        return None if result is None else result.baseline

    def on_sample(self, sample: Sample) -> bool:
        """Learn from an answer's latency, cut on a timeout (True when cut); throttles are AIMD's."""
        if sample.outcome is Outcome.SUCCESS:
            cuts = self.decreases
            self.on_answer(sample.latency_s, sample.reviews, sample.in_flight, sample.started, sample.load)
            return self.decreases > cuts
        if sample.outcome is Outcome.TIMEOUT:
            return self.on_timeout(sample.started)
        return False

    def on_answer(self, latency_s: float, reviews: int, in_flight: int, request_started: float, load: int = 0) -> None:
        """One answered request: its latency, how many reviews it carried, how many of this worker's requests
        were in flight when it started (itself included) and how many of its process's (`load`; the fit's
        measure of our load, since the workers of a process queue behind each other at a shared server)."""
        per_review = latency_s / max(1, reviews)
        self._answers.append(Answer(self.clock(), max(1, load or in_flight), per_review))
        if request_started < self._last_cut:
            return
        self._round.append(per_review)
        self._round_busy = self._round_busy or in_flight >= self.current
        if len(self._round) >= max(self.min_samples, self.current):
            self._end_round()

    def on_timeout(self, request_started: float) -> bool:
        """A timeout is congestion until proven otherwise: cut once per event; True when the window was cut."""
        if request_started < self._last_cut:
            return False
        self._cut(self.timeout_factor)
        return True

    def _cut(self, factor: float) -> None:
        self.value = max(float(self.minimum), self.value * factor)
        self._last_cut = self.clock()
        self.decreases += 1
        self._round.clear()
        self._round_busy = False

    def _end_round(self) -> None:
        n = len(self._round)
        avg = sum(self._round) / n
        busy = self._round_busy
        self._round.clear()
        self._round_busy = False
        result = self.fit()
        if result is None:
            return
        self.last_ratio = avg / result.baseline
        excess = (avg - result.baseline) / (result.spread / math.sqrt(n)) if result.spread > 0 else math.inf
        if self.last_ratio > self.tolerance and excess > self.significance:
            self._cut(max(0.5, self.tolerance / self.last_ratio))
        elif busy and self.last_ratio <= self.tolerance:
            slow_start = self.decreases == 0 and self.last_ratio <= self.flat
            step = max(1.0, math.sqrt(self.value)) if slow_start else 1.0
            self.value = min(float(self.maximum), self.value + step)
