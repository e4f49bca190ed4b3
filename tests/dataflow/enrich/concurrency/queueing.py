"""A discrete-event model of one worker with a full backlog against a server, on a virtual clock.

The server is either load-independent (latency drawn per request: a hosted model's own noise) or a FIFO queue
with `slots` slots and noisy service times (llama.cpp behind one slot, a model near capacity). The client keeps
the limit's window full, as the engine does with reviews waiting, and feeds every outcome to the limit with the
in-flight count at the request's start.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.enrich.concurrency.gradient import GradientLimit
from dataflow.enrich.concurrency.limit import Outcome, Sample

Latency = Callable[[random.Random, float], float]  # (rng, start time) -> seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def exponential(mean_s: float) -> Latency:
    return lambda rng, _start: rng.expovariate(1.0 / mean_s)


def lognormal(mean_s: float, sigma: float) -> Latency:
    mu = math.log(mean_s) - sigma**2 / 2
    return lambda rng, _start: rng.lognormvariate(mu, sigma)


@dataclass
class Fifo:
    """`slots` servers in front of one queue; each request's service time is lognormal around `service_s`."""

    slots: int
    service_s: float
    sigma: float = 0.3
    _free_at: list[float] = field(default_factory=list)

    def __call__(self, rng: random.Random, start: float) -> float:
        if not self._free_at:
            self._free_at = [0.0] * self.slots
        free = heapq.heappop(self._free_at)
        end = max(start, free) + rng.lognormvariate(math.log(self.service_s) - self.sigma**2 / 2, self.sigma)
        heapq.heappush(self._free_at, end)
        return end - start


@dataclass
class Run:
    average_window: float
    timeouts: int
    answers: int


def simulate(
    limit_for: Callable[[Clock], GradientLimit], latency: Latency, seconds: float, seed: int, timeout_s: float = 30.0
) -> Run:
    rng = random.Random(seed)
    clock = Clock()
    limit = limit_for(clock)
    pending: list[tuple[float, float, float | None, int]] = []  # (finish, start, latency or None, in flight)
    window_area = 0.0
    timeouts = answers = 0
    while clock.now < seconds:
        while len(pending) < limit.current:
            took = latency(rng, clock.now)
            finish = clock.now + min(took, timeout_s)
            heapq.heappush(pending, (finish, clock.now, took if took <= timeout_s else None, len(pending) + 1))
        finish, started, took, in_flight = heapq.heappop(pending)
        window_area += limit.current * (finish - clock.now)
        clock.now = finish
        if took is None:
            timeouts += 1
            limit.on_sample(Sample(Outcome.TIMEOUT, started))
        else:
            answers += 1
            limit.on_sample(Sample(Outcome.SUCCESS, started, took, 1, in_flight))
    return Run(window_area / clock.now, timeouts, answers)
