"""When the Bytewax side of enrichment looks for finished results, and how late it finds them.

Bytewax 0.21 cannot be woken from another thread: a `stateful_batch` logic is called only with new input or at
the time its `notify_at` asks for, and the operator is activated at the earliest time any key asks for
(operators.rs: `activator.activate_after(min(notify_at) - now)`). So results that finish in the engine's
thread wait for the next notification. A fixed 10 ms poll per key made every worker wake 100 times a second
per key for as long as the model took (most of a core). Instead every key of every worker asks for the same
instants, the next multiple of ENRICH_NOTIFY_INTERVAL_S on the wall clock: one activation serves all keys, a
wake costs a few Python calls per key with reviews in flight, and a result waits at most one interval.

With a slow model even 50 wakes a second are waste: a request cannot finish much faster than the fastest
recent response, so a logic skips the ticks until half of that has passed since the oldest request in flight
started (`EnrichEngine.quiet_until`). The fastest of the last 50 responses of any outcome (errors and throttles
too) keeps this conservative: a model that suddenly answers faster delays only its first fast answers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def next_tick(now: datetime, interval_s: float) -> datetime:
    """The first multiple of `interval_s` (since the epoch) strictly after `now`: shared by every key."""
    stamp = now.timestamp()
    tick = (math.floor(stamp / interval_s) + 1) * interval_s
    return datetime.fromtimestamp(tick, tz=UTC)


class DelayStats:
    """A bounded histogram of delays (1 ms buckets up to 1 s, then one overflow bucket) with percentiles."""

    BUCKETS = 1000

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)
        self.n = 0
        self.max_s = 0.0

    def add(self, delay_s: float) -> None:
        self.counts[min(self.BUCKETS, max(0, int(delay_s * 1000)))] += 1
        self.n += 1
        self.max_s = max(self.max_s, delay_s)

    def percentile_ms(self, q: float) -> float:
        """Upper edge (ms) of the bucket holding the q-th percentile; 0 when empty."""
        if self.n == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100 * self.n))
        seen = 0
        for ms, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return float(ms + 1) if ms < self.BUCKETS else self.max_s * 1000
        return self.max_s * 1000
