"""Load shedding: admit only what the backend's slots can start soon, answer the excess at once.

Real Bedrock does not queue without bound under overload: it answers ThrottlingException (429) or
ServiceUnavailableException (503) quickly. Here the backend has `slots` requests in service at once; a request
that finds them busy waits in a queue whose length is capped so that whatever is admitted can still finish
within the caller's timeout: with S slots and a measured service time T (an EWMA), the k-th request in line
starts after about ceil(k / S) * T and ends T later, so at most S * (floor(timeout / T) - 1) may wait. Until
the first request has been measured, one request may wait per slot. `max_queue` overrides the measured cap;
`queue_timeout_s = 0` restores an unbounded queue.

Waiting requests are served by service tier, then in arrival order: priority, then default, then flex (Bedrock
serves flex after the other tiers under load), so a flex request waits as long as others keep arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

EWMA_ALPHA = 0.3
TIER_RANK = {"reserved": 0, "priority": 0, "default": 1, "flex": 2}  # lower is served first


class TierSlots:
    """A semaphore whose waiters are woken by rank, then arrival (a heap of futures)."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, rank: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # woken and cancelled at once: pass the slot on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


@dataclass
class Admission:
    slots: int = 0  # requests in service at once; 0 = unlimited (no queue, nothing shed)
    clock: Callable[[], float] = time.monotonic
    service_ewma_s: float | None = None
    in_service: int = 0
    queued: int = 0
    max_queued: int = 0
    _semaphore: TierSlots | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._semaphore = TierSlots(self.slots) if self.slots else None

    def resize(self, slots: int) -> None:
        """Change the slot count; requests already waiting keep the old semaphore, new ones use the new one."""
        if slots != self.slots:
            self.slots = slots
            self._semaphore = TierSlots(slots) if slots else None

    def queue_limit(self, timeout_s: float, max_queue: int | None) -> int | None:
        """How many requests may wait for a slot now; None = no limit."""
        if not self.slots:
            return None
        if max_queue is not None:
            return max_queue
        if timeout_s <= 0:
            return None
        if self.service_ewma_s is None:
            return self.slots
        rounds = math.floor(timeout_s / max(self.service_ewma_s, 1e-6)) - 1
        return self.slots * max(0, rounds)

    def admits(self, timeout_s: float, max_queue: int | None) -> bool:
        """Whether a request arriving now may wait for a slot (it is then expected to finish in time)."""
        limit = self.queue_limit(timeout_s, max_queue)
        if limit is None:
            return True
        would_wait = self.in_service + self.queued + 1 - self.slots
        return would_wait <= limit

    @contextlib.asynccontextmanager
    async def slot(self, tier: str = "default") -> AsyncIterator[None]:
        """Hold one backend slot for the body (waiting behind better tiers); its duration feeds the estimate."""
        semaphore = self._semaphore
        if semaphore is not None:
            self.queued += 1
            self.max_queued = max(self.max_queued, self.queued)
            try:
                await semaphore.acquire(TIER_RANK.get(tier, 1))
            finally:
                self.queued -= 1
        self.in_service += 1
        started = self.clock()
        try:
            yield
        finally:
            self.in_service -= 1
            if semaphore is not None:
                semaphore.release()
            self.observe(self.clock() - started)

    def observe(self, service_s: float) -> None:
        if self.service_ewma_s is None:
            self.service_ewma_s = service_s
        else:
            self.service_ewma_s += EWMA_ALPHA * (service_s - self.service_ewma_s)

    def reset(self) -> None:
        """Forget the measurements (the requests in service or waiting are not touched)."""
        self.service_ewma_s = None
        self.max_queued = self.queued

    def to_dict(self, timeout_s: float, max_queue: int | None) -> dict:
        ewma = self.service_ewma_s
        return {
            "slots": self.slots,
            "in_service": self.in_service,
            "queued": self.queued,
            "max_queued": self.max_queued,
            "queue_limit": self.queue_limit(timeout_s, max_queue),
            "service_ms_ewma": None if ewma is None else round(ewma * 1000, 3),
        }
