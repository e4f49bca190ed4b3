"""The latency-based window, fed latencies from a simulated server on a fake clock."""

from __future__ import annotations

from dataflow.enrich.concurrency.gradient import GradientLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(limit: GradientLimit, clock: Clock, service_s: float, slots: int, rounds: int) -> list[int]:
    """Run `rounds` rounds against a server with `slots` slots: a full window of requests waits in its queue,
    so each answer takes (window / slots) x service time. Returns the window after each round."""
    seen = []
    for _ in range(rounds):
        window = limit.current
        latency = service_s * max(1.0, window / slots)
        for _ in range(max(limit.min_samples, window)):
            started = clock.now
            clock.now += latency / window
            limit.on_answer(latency, reviews=1, in_flight=window, request_started=started)
        seen.append(limit.current)
    return seen


def test_starts_low_and_grows_while_latency_is_flat() -> None:
    clock = Clock()
    limit = GradientLimit(maximum=16, minimum=1, initial=2, clock=clock)
    assert limit.current == 2
    # A server with plenty of slots: latency does not depend on the window.
    windows = serve(limit, clock, service_s=1.0, slots=64, rounds=30)
    assert windows[-1] == 16 and windows == sorted(windows)


def test_grows_by_a_root_of_the_window_until_the_first_cut_while_latency_is_flat() -> None:
    clock = Clock()
    limit = GradientLimit(maximum=64, minimum=1, initial=2, clock=clock)
    # Flat latency (no queue anywhere): 2 -> 32 in about ten rounds, not thirty (start-up after a restart).
    windows = serve(limit, clock, service_s=0.2, slots=1024, rounds=12)
    assert windows == sorted(windows) and windows[-1] >= 32, windows
    # Latency rising with the window but within the tolerance (a queue forming: +3% per request in flight)
    # grows it by one per round once the fit has seen the rise, and never cuts.
    rising = GradientLimit(maximum=64, minimum=1, initial=8, clock=clock)
    steps = []
    for _ in range(8):
        before = rising.current
        for _ in range(max(rising.min_samples, before)):
            started = clock.now
            clock.now += 0.01
            rising.on_answer(1.0 + 0.03 * (before - 1), reviews=1, in_flight=before, request_started=started)
        steps.append(rising.current - before)
    assert rising.decreases == 0 and steps[1:] == [1] * 7, steps
    # Once cut (the first sign of congestion), growth is by one even while latency is flat again.
    assert limit.on_timeout(clock.now)
    cut = limit.current
    after = serve(limit, clock, service_s=0.2, slots=1024, rounds=6)
    assert after == list(range(cut + 1, cut + 7)), after


def test_shrinks_under_a_slow_single_slot_server_and_grows_back_when_it_speeds_up() -> None:
    clock = Clock()
    limit = GradientLimit(maximum=16, minimum=1, initial=2, tolerance=1.5, clock=clock)
    serve(limit, clock, service_s=0.1, slots=64, rounds=30)
    assert limit.current == 16
    # The server slows down to one slot: every extra request only queues, latency grows with the window.
    slow = serve(limit, clock, service_s=0.1, slots=1, rounds=40)
    assert max(slow[-10:]) <= 3, slow
    assert limit.decreases >= 2
    # It speeds up again (many slots): latency is flat at the old baseline, the window climbs back.
    fast = serve(limit, clock, service_s=0.1, slots=64, rounds=40)
    assert fast[-1] == 16, fast


def test_timeouts_cut_once_per_congestion_event() -> None:
    clock = Clock()
    limit = GradientLimit(maximum=16, minimum=1, initial=16, clock=clock)
    sent_before = clock.now
    clock.now += 1
    assert limit.on_timeout(sent_before) and limit.current == 8
    # Other requests of the same burst (sent before the cut) time out too: no further cut.
    assert not limit.on_timeout(sent_before) and limit.current == 8
    clock.now += 1
    assert limit.on_timeout(clock.now) and limit.current == 4
    for _ in range(5):
        clock.now += 1
        limit.on_timeout(clock.now)
    assert limit.current == 1


def test_packed_requests_are_compared_per_review() -> None:
    clock = Clock()
    limit = GradientLimit(maximum=8, minimum=1, initial=4, min_samples=4, clock=clock)
    # Requests of 1 review in 1 s, then requests of 5 reviews in 5 s: the same per-review latency, no cut.
    for reviews in [1] * 8 + [5] * 16:
        started = clock.now
        clock.now += 0.25
        limit.on_answer(1.0 * reviews, reviews=reviews, in_flight=limit.current, request_started=started)
    assert limit.decreases == 0 and limit.current > 4


def test_an_idle_caller_does_not_grow_the_window() -> None:
    clock = Clock()
    limit = GradientLimit(maximum=16, minimum=1, initial=2, clock=clock)
    for _ in range(60):
        started = clock.now
        clock.now += 0.1
        limit.on_answer(0.1, reviews=1, in_flight=1, request_started=started)
    assert limit.current == 2


def _two_workers_on_one_slot(share_load: bool) -> list[int]:
    """Two workers' limits against one single-slot server: each answer waits behind both workers' requests."""
    clock = Clock()
    limits = [GradientLimit(maximum=16, minimum=1, initial=2, clock=clock) for _ in range(2)]
    totals = []
    for _ in range(60):
        windows = [limit.current for limit in limits]
        total = sum(windows)
        latency = 0.5 * total  # one slot: every request in flight from either worker is ahead of or behind it
        for limit, window in zip(limits, windows, strict=True):
            for _ in range(max(limit.min_samples, window)):
                started = clock.now
                clock.now += latency / total
                limit.on_answer(latency, 1, window, started, load=total if share_load else 0)
        totals.append(sum(limit.current for limit in limits))
    return totals


def test_workers_of_one_process_see_each_others_queue() -> None:
    # Fitted on the process's in-flight count, the shared queue is ours: both stay at the minimum.
    assert max(_two_workers_on_one_slot(share_load=True)[-20:]) <= 3
    # On its own count only, each worker reads the other's queue as noise and lets its window grow.
    assert max(_two_workers_on_one_slot(share_load=False)[-20:]) >= 4
