"""The latency window against noisy servers: noise alone must not shrink it, our own queueing must.

Each case runs ten virtual minutes on three seeds (queueing.py). The first version of the limit (each round
compared with the best round of the last 300 s) averaged a window of about 1 of 16 against a model whose
latency is exponential with a mean of 1 s, and about 4 with lognormal noise (sigma 0.5).
"""

from __future__ import annotations

import pytest

from dataflow.enrich.concurrency.gradient import GradientLimit
from tests.dataflow.enrich.concurrency.queueing import Fifo, exponential, lognormal, simulate

SEEDS = (1, 2, 3)


def limit(maximum: int):
    return lambda clock: GradientLimit(maximum, 1, initial=2, clock=clock)


@pytest.mark.parametrize(
    "latency", [exponential(1.0), lognormal(1.0, 0.5), exponential(5.0)], ids=["exp-1s", "lognormal-0.5", "exp-5s"]
)
@pytest.mark.parametrize("maximum", [2, 16])
def test_latency_noise_with_no_queue_keeps_the_window_open(latency, maximum: int) -> None:
    for seed in SEEDS:
        run = simulate(limit(maximum), latency, seconds=600, seed=seed, timeout_s=60)
        assert run.average_window >= 0.85 * maximum, (seed, run)


@pytest.mark.parametrize("service_s,sigma", [(3.0, 0.3), (3.0, 0.6), (0.5, 0.3)])
def test_a_single_slot_queue_keeps_the_window_near_one(service_s: float, sigma: float) -> None:
    for seed in SEEDS:
        run = simulate(limit(16), Fifo(1, service_s, sigma), seconds=600, seed=seed, timeout_s=30)
        # One request in service, about one waiting: latency stays near two service times, far from the timeout.
        assert run.average_window <= 2.3 and run.timeouts == 0, (seed, run)


def test_a_four_slot_queue_keeps_the_window_near_four() -> None:
    for seed in SEEDS:
        run = simulate(limit(16), Fifo(4, 1.0), seconds=600, seed=seed)
        assert 3.0 <= run.average_window <= 6.0 and run.timeouts == 0, (seed, run)
