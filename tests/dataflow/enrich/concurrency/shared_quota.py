"""A discrete-event model of several workers' windows on one per-minute request quota, on a virtual clock.

Each worker has the real `Window` (AIMD, gradient, pacer) built from the settings, a backlog (or nothing to
send: a worker whose shards are elsewhere) and sends as the engine's dispatch loop does: while there is work,
room in the window and the pacer allows it. The quota is Bedrock's (and the local server's): a sliding 60 s
window of admitted requests; a refused request comes back at once as a throttle and uses nothing. An answer
takes a latency drawn per request, independent of the load (a hosted model's own noise). Workers of one process
share its in-flight count (`ProcessLoad`), as the engines of one flow do.

With `tpm`, a tokens-per-minute quota binds too (the local server's own `Quota`, devstack/bedrock/quota.py): a
request reserves its input tokens + maxTokens at admission and is settled to input + output x 5 (Haiku 4.5's
burndown) when it answers; the token counts of a pack of 8 realistic reviews vary per request (`Pack`).
"""

from __future__ import annotations

import collections
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from dataflow.enrich.concurrency.limit import Outcome, Sample
from dataflow.enrich.concurrency.window import Window
from devstack.bedrock.quota import Quota, QuotaDenied, Reservation
from tests.dataflow.enrich.concurrency.queueing import Clock, Latency
from tests.dataflow.helpers import settings

THROTTLE_S = 0.02  # a refusal's round trip
Waits = tuple[tuple[float, float], ...]  # (from, until) spans the flow waits on a worker


def waits(every: float, lasting: float, offset: float = 0.0, until: float = 3600.0) -> Waits:
    """A step that hits its cap again and again: a wait of `lasting` s every `every` s."""
    count = int((until - offset) // every)
    return tuple((offset + i * every, offset + i * every + lasting) for i in range(count))


@dataclass(frozen=True)
class Pack:
    """One request's tokens at 8 reviews per request, as the TPM benchmark measures them (~93 input and ~21.5
    output tokens per review, ~200 quota tokens); maxTokens is what prompt.py asks for 8 reviews."""

    reviews: int = 8
    input_mean: float = 93.0
    output_mean: float = 21.5
    burndown: int = 5
    max_tokens: int = 24 + 120 * 8

    def draw(self, rng: random.Random) -> tuple[int, int]:
        """(reserved at admission, settled when answered)."""
        inputs = sum(int(rng.lognormvariate(0, 0.5) * self.input_mean / 1.133) for _ in range(self.reviews))
        outputs = sum(max(8, int(rng.gauss(self.output_mean, 5))) for _ in range(self.reviews))
        return inputs + self.max_tokens, inputs + outputs * self.burndown


@dataclass
class Worker:
    window: Window
    process: int
    busy_from: float | None  # when its backlog arrives; None: never (nothing to read)
    busy_until: float = float("inf")  # when its backlog runs dry (its shards drained, or read elsewhere)
    hurry: Waits = ((0.0, 0.0),)  # while the flow waits on it (its step holds up the epoch)
    in_flight: int = 0
    wake_at: float | None = None
    admitted: list[float] = field(default_factory=list)  # starts of the admitted requests
    throttled: list[float] = field(default_factory=list)


@dataclass
class Result:
    per_minute: float  # admitted requests per minute, all workers, within [warmup, seconds]
    throttled_share: float  # throttled / sent within [warmup, seconds]
    workers: list[Worker]


def simulate(
    work: list[list[float | tuple[float, float] | None]],
    latency: Latency,
    rpm: int,
    seconds: float = 240.0,
    warmup: float = 90.0,
    seed: int = 1,
    tune: Callable[[Window], None] | None = None,
    hurry: dict[int, tuple[float, float] | Waits] | None = None,
    tpm: int = 0,
    **env: object,
) -> Result:
    """`work[p][w]`: when worker `w` of process `p` has a backlog: from a time on, (from, until), or None (never);
    `hurry`: worker (index in that order) -> (from, until) the flow waits on it, or several; `tpm`: a token
    quota too (0: none); env: the settings of every window."""
    rng = random.Random(seed)
    clock = Clock()
    workers: list[Worker] = []
    for p, process in enumerate(work):
        for busy_from in process:  # type: ignore[assignment]
            window = Window.from_settings(settings(**env))
            if tune is not None:
                tune(window)
            for limit in (window.aimd, window.gradient, window.pacer):
                if limit is not None:
                    limit.clock = clock
            span = busy_from if isinstance(busy_from, tuple) else (busy_from, float("inf"))
            workers.append(Worker(window, p, span[0], span[1]))
    for index, span in (hurry or {}).items():
        workers[index].hurry = span if isinstance(span[0], tuple) else (span,)  # type: ignore[assignment]
    load = collections.Counter[int]()
    quota = Quota(rpm=rpm, tpm=tpm, clock=clock)  # the local server's own quota
    pack = Pack()
    events: list[tuple[float, int, int, Sample | None]] = []  # (time, seq, worker, sample or None for a wake)
    seq = 0
    settling: list[tuple[float, Reservation, int]] = []  # (answered at, its reservation, tokens it used)

    def push(at: float, index: int, sample: Sample | None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (at, seq, index, sample))

    def dispatch(index: int) -> None:
        worker = workers[index]
        if worker.busy_from is None or not worker.busy_from <= clock.now < worker.busy_until:
            return
        while worker.in_flight < worker.window.current:
            delay = worker.window.delay()
            if delay > 0:
                if worker.wake_at is None:
                    worker.wake_at = clock.now + delay
                    push(worker.wake_at, index, None)
                return
            worker.window.on_send()
            worker.in_flight += 1
            load[worker.process] += 1
            now = clock.now
            reserved, settled = pack.draw(rng) if tpm else (0, 0)
            try:
                reservation = quota.reserve(reserved)
            except QuotaDenied:
                worker.throttled.append(now)
                push(now + THROTTLE_S, index, Sample(Outcome.THROTTLE, now))
                continue
            worker.admitted.append(now)
            took = latency(rng, now)
            sample = Sample(Outcome.SUCCESS, now, took, 8, worker.in_flight, load[worker.process])
            push(now + took, index, sample)
            settling.append((now + took, reservation, settled))

    for index, worker in enumerate(workers):
        if worker.busy_from is not None:
            push(worker.busy_from, index, None)
    while events and events[0][0] < seconds:
        at, _, index, sample = heapq.heappop(events)
        clock.now = at
        for done in [d for d in settling if d[0] <= at]:  # answered: the reservation becomes what it used
            Quota.settle(done[1], done[2])
            settling.remove(done)
        worker = workers[index]
        worker.window.hurry(any(start <= at < end for start, end in worker.hurry))
        if sample is None:
            worker.wake_at = None
        else:
            worker.in_flight -= 1
            load[worker.process] -= 1
            worker.window.on_sample(sample)
        dispatch(index)
    admitted = sum(1 for w in workers for t in w.admitted if t >= warmup)
    throttled = sum(1 for w in workers for t in w.throttled if t >= warmup)
    return Result(admitted / (seconds - warmup) * 60, throttled / max(1, admitted + throttled), workers)
