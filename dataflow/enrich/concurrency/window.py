"""The enrichment window: how many Bedrock requests one worker may have in flight, and when the next may start.

Three controls, each answering one kind of congestion, combined by taking the smallest window:
- `AimdLimit` (aimd.py): throttling says the quota is spent now: halve, then grow by one per window.
- `GradientLimit` (gradient.py): rising latency and timeouts say the server is queueing: shrink in
  proportion, grow while latency stays flat. It starts low (BEDROCK_INITIAL_CONCURRENCY), so the configured
  maximum is a ceiling reached only while latency allows it.
- `RatePacer` (aimd.py): a per-minute quota: space request starts at the rate the quota admits.

BEDROCK_ADAPTIVE=false pins the window at BEDROCK_MAX_CONCURRENCY and never paces (the reference behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflow.enrich.concurrency.aimd import AimdLimit, RatePacer
from dataflow.enrich.concurrency.gradient import GradientLimit
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

    def on_answer(self, started: float, latency_s: float, reviews: int, in_flight: int) -> None:
        """A request was answered (valid or not: the server did its work in `latency_s`)."""
        self.aimd.on_success()
        if self.pacer is not None:
            self.pacer.on_success(started)
        if self.gradient is not None:
            self.gradient.on_sample(latency_s, reviews, in_flight, started)

    def on_timeout(self, started: float) -> bool:
        """A request timed out: shrink the latency window (once per congestion event); True when it was cut."""
        return self.gradient is not None and self.gradient.on_timeout(started)
