"""How much of a request's latency our own load explains: per-review latency regressed on requests in flight.

A server that queues (llama.cpp behind one slot, Bedrock near capacity) answers later the more requests we
have in flight: latency grows with our in-flight count, about one service time per request ahead. A hosted
model's latency also varies on its own (p99 several times p50), independent of our load. A least-squares line
of latency against the in-flight count at each request's start tells the two apart: its slope is the cost of
one more request in flight, and only a slope that stands out of the noise (`significance` standard errors)
is taken as queueing. The line's value at the smallest window is the latency the server gives with the least
load from us: the no-load baseline. Without a significant slope the baseline is the plain mean, so a noisy
server's normal latency reads as normal (a minimum or a low percentile would read it as congested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fit:
    baseline: float  # per-review latency expected at the smallest window (seconds)
    spread: float  # standard deviation of one sample around the line (seconds)
    slope: float  # seconds per review added by each request in flight; 0 when not significant


def fit(points: Sequence[tuple[int, float]], at: float, significance: float) -> Fit | None:
    """Fit (in-flight, per-review latency) points; the baseline is the line's value at in-flight `at`.

    None with fewer than 3 points."""
    n = len(points)
    if n < 3:
        return None
    mean_k = math.fsum(k for k, _ in points) / n
    mean_y = math.fsum(y for _, y in points) / n
    sxx = math.fsum((k - mean_k) ** 2 for k, _ in points)
    sxy = math.fsum((k - mean_k) * (y - mean_y) for k, y in points)
    syy = math.fsum((y - mean_y) ** 2 for _, y in points)
    slope = sxy / sxx if sxx > 0 else 0.0
    spread = math.sqrt(max(0.0, syy - slope * sxy) / (n - 2))
    standard_error = spread / math.sqrt(sxx) if sxx > 0 else math.inf
    if slope <= 0 or slope < significance * standard_error:
        return Fit(mean_y, math.sqrt(syy / (n - 1)), 0.0)
    return Fit(max(1e-9, mean_y + slope * (at - mean_k)), spread, slope)
