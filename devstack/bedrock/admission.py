"""Load shedding: admit only what the backend's slots can start soon, answer the excess at once.

Real Bedrock does not queue without bound under overload: it answers ThrottlingException (429) or
ServiceUnavailableException (503) quickly. Here the backend has `slots` requests in service at once; a request
that finds them busy waits in a queue whose length is capped so that whatever is admitted can still finish
within the caller's timeout: with S slots and a measured service time T (an EWMA), the k-th request in line
starts after about ceil(k / S) * T and ends T later, so at most S * (floor(timeout / T) - 1) may wait. Until
the first request has been measured, one request may wait per slot. `max_queue` overrides the measured cap;
`queue_timeout_s = 0` restores an unbounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

EWMA_ALPHA = 0.3


@dataclass
class Admission:
    slots: int = 0  # requests in service at once; 0 = unlimited (no queue, nothing shed)
    clock: Callable[[], float] = time.monotonic
    service_ewma_s: float | None = None
    in_service: int = 0
    queued: int = 0
    max_queued: int = 0
    _semaphore: asyncio.Semaphore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.slots) if self.slots else None

    def resize(self, slots: int) -> None:
        """Change the slot count; requests already waiting keep the old semaphore, new ones use the new one."""
        if slots != self.slots:
            self.slots = slots
            self._semaphore = asyncio.Semaphore(slots) if slots else None

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
    async def slot(self) -> AsyncIterator[None]:
        """Hold one backend slot for the body; its duration feeds the service-time estimate."""
        semaphore = self._semaphore
        if semaphore is not None:
            self.queued += 1
            self.max_queued = max(self.max_queued, self.queued)
            try:
                await semaphore.acquire()
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
