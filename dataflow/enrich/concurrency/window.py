"""The enrichment window: how many Bedrock requests one worker may have in flight, and when the next may start.

Three limits, each answering one kind of congestion, fed the same outcomes (limit.py); the window is the
smallest of the two concurrency limits, and the pacer spaces the starts:
- `AimdLimit` (aimd.py): throttling says the quota is spent now: halve, then grow by one per window;
- `GradientLimit` (gradient.py): rising latency and timeouts say the server is queueing: shrink in
  proportion, grow while latency stays flat. It starts low (BEDROCK_INITIAL_CONCURRENCY), so the configured
  maximum is a ceiling reached only while latency allows it;
- `RatePacer` (pacer.py): a per-minute quota: space request starts at the rate the quota admits; while the
  flow waits on this worker (`hurry`), probe fast for the share the starved workers leave.

Throttles are handled here rather than by each limit alone: the pacer tells one congestion event from the
rest of its burst (and from scattered throttles it should only pause for), and the AIMD window is cut only
when the pacer reacted, so a burst of throttles cuts once.

BEDROCK_ADAPTIVE=false pins the window at BEDROCK_MAX_CONCURRENCY and never paces (the reference behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflow.enrich.concurrency.aimd import AimdLimit
from dataflow.enrich.concurrency.gradient import GradientLimit
from dataflow.enrich.concurrency.limit import Outcome, Sample
from dataflow.enrich.concurrency.pacer import RatePacer
from dataflow.settings import Settings


@dataclass
class Window:
    aimd: AimdLimit
    gradient: GradientLimit | None = None
    pacer: RatePacer | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Window:
        maximum = settings.bedrock_max_concurrency
        if not settings.bedrock_adaptive:
            return cls(AimdLimit(maximum, maximum))
        minimum = settings.bedrock_min_concurrency
        gradient = GradientLimit(
            maximum,
            minimum,
            initial=settings.bedrock_initial_concurrency,
            tolerance=settings.bedrock_latency_tolerance,
            baseline_s=settings.bedrock_latency_baseline_s,
        )
        return cls(AimdLimit(maximum, minimum), gradient, RatePacer())

    @property
    def current(self) -> int:
        if self.gradient is None:
            return self.aimd.current
        return min(self.aimd.current, self.gradient.current)

    @property
    def at_minimum(self) -> bool:
        return self.current <= self.aimd.minimum

    @property
    def pace_rps(self) -> float | None:
        """The pacer's rate in requests per second; None while unpaced."""
        return self.pacer.current if self.pacer is not None else None

    def hurry(self, on: bool) -> None:
        """The flow waits on this worker (or no longer does): the pacer may take the idle workers' share."""
        if self.pacer is not None:
            self.pacer.set_hurry(on)

    def delay(self) -> float:
        """Seconds until the next request may start (0: now)."""
        return self.pacer.delay() if self.pacer is not None else 0.0

    def on_send(self) -> None:
        if self.pacer is not None:
            self.pacer.on_send()

    def on_sample(self, sample: Sample) -> bool:
        """Feed one outcome to every limit; True when the window (or the pace) was cut."""
        if sample.outcome is Outcome.THROTTLE:
            if self.pacer is None or not self.pacer.on_sample(sample):
                return False
            self.aimd.on_sample(sample)
            return True
        cut = False
        for limit in (self.aimd, self.pacer, self.gradient):
            if limit is not None:
                cut = limit.on_sample(sample) or cut
        return cut
