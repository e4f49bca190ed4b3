"""The per-worker Bedrock enrichment engine: an asyncio loop in a background thread.

Each Bytewax worker thread has one `EnrichEngine`. It keeps up to the concurrency limit of Converse
requests in flight at all times, across Bytewax batches, so one slow request never empties the window.
Reviews come in through `submit` and leave, in completion order, through the sink deque they came with.

Failure handling per review: throttling (window cut + pacing + backoff), 5xx, timeouts and invalid
answers are retried with exponential backoff and full jitter, then dead-lettered with the last reason.
Several reviews may share a request (BEDROCK_REVIEWS_PER_REQUEST); answers are matched by id and any
review without a valid entry falls back to a request of its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from dataflow import metrics
from dataflow.channels.backpressure import BufferGauge
from dataflow.enrich.audit import PackingAudit
from dataflow.enrich.bedrock import ClientFactory, converse, request_shape
from dataflow.enrich.concurrency.load import ProcessLoad
from dataflow.enrich.concurrency.window import Window
from dataflow.enrich.errors import CallError, ErrorKind
from dataflow.enrich.outcomes import EngineStats, RequestOutcomes
from dataflow.enrich.retry_policy import Job
from dataflow.records import DeadLetter, EnrichedReview, Review
from dataflow.settings import Settings

log = logging.getLogger(__name__)

EnrichOutput = EnrichedReview | DeadLetter
Done = tuple[float, EnrichOutput]  # (time.monotonic() at completion, result): the logic measures its emission delay


class EngineHalted(RuntimeError):
    """The flow must stop (one line naming what to fix); the reviews in flight are re-read after a restart."""


class EnrichEngine:
    """Per-worker asyncio loop, Bedrock client, window and job queue; what each request's outcome does to
    its reviews and to the window is `RequestOutcomes` (outcomes.py).

    `buffers` is the backpressure channel: the engine reports there how many reviews it holds, and the
    Kinesis source reads only as many records as there is room for."""

    def __init__(
        self,
        settings: Settings,
        client_factory: ClientFactory,
        worker: str,
        buffers: BufferGauge | None = None,
        load: ProcessLoad | None = None,
        audit: PackingAudit | None = None,
    ) -> None:
        self.settings = settings
        self.load = load or ProcessLoad()  # shared by the engines of one flow (registry.py)
        self.worker = worker
        self.buffers = buffers or BufferGauge()
        # The window (concurrency/window.py): min of the throttling (AIMD) and latency limits, plus the pacer.
        self.window = Window.from_settings(settings)
        self._pace_timer: asyncio.TimerHandle | None = None
        self.stats = EngineStats()
        self._factory = client_factory
        self._pending: collections.deque[Job] = collections.deque()
        self._outstanding = 0  # handed over and not yet finished; guarded by _changed
        self._held_back: dict[int, int] = {}  # reviews each logic keeps queued for lack of room; guarded by _changed
        self._starts: dict[int, float] = {}  # start of each request in flight; guarded by _changed
        self._recent_s: collections.deque[float] = collections.deque(maxlen=50)  # last response times, any outcome
        self._in_flight = 0
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._wake: asyncio.Event | None = None
        self._client: Any = None
        self._client_cm: Any = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        # the packing audit is shared by the engines of one flow (registry.py), as `load` is
        self.audit = audit or PackingAudit.from_settings(worker, settings)
        self.outcomes = RequestOutcomes(
            settings,
            worker,
            self.window,
            self.stats,
            requeue=lambda jobs: self._enqueue(jobs, True),
            requeue_later=lambda delay, job: self._loop.call_later(delay, self._enqueue, [job], True),
            complete=self._complete,
            on_halt=self._notify,
            audit=self.audit,
        )
        self.buffers.register(id(self), settings.max_buffered_reviews)
        self._thread = threading.Thread(target=self._run, name=f"bedrock-{worker}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self.buffers.unregister(id(self))  # never started: it must not hold back the source
            raise RuntimeError(f"cannot create the Bedrock client: {self._start_error}") from self._start_error
        structured, tier = request_shape(settings)
        log.info(
            "enrich.engine_started worker=%s window=%d max=%d buffered_max=%d structured_output=%s tier=%s%s",
            worker,
            self.window.current,
            settings.bedrock_max_concurrency,
            settings.max_buffered_reviews,
            structured,
            tier.value,
            ""
            if tier.value == settings.bedrock_service_tier
            else f" (the model does not offer {settings.bedrock_service_tier})",
        )

    # -- thread-safe API for the Bytewax worker --------------------------------------------------------

    def submit(self, reviews: Iterable[Review], sink: collections.deque[Done]) -> None:
        jobs = [Job(r, sink) for r in reviews]
        if jobs:
            with self._changed:
                self._outstanding_add(len(jobs))
            self._loop.call_soon_threadsafe(self._enqueue, jobs, False)

    def buffered(self) -> int:
        """Reviews queued, waiting for a retry or in flight (not the finished ones)."""
        with self._changed:
            return self._outstanding

    def hold_back(self, owner: int, queued: int) -> None:
        """Reviews a logic keeps in its own queue for lack of room count against the process's room too."""
        with self._changed:
            if queued:
                self._held_back[owner] = queued
            else:
                self._held_back.pop(owner, None)
            self.buffers.set(id(self), self._outstanding + sum(self._held_back.values()))

    def quiet_until(self) -> float:
        """A `time.monotonic()` before which no request in flight is expected to finish: each started at least
        half the fastest of the last 50 responses (answers, errors, throttles alike) ago. 0 when unknown."""
        with self._changed:
            if not self._starts or not self._recent_s:
                return 0.0
            return min(self._starts.values()) + 0.5 * min(self._recent_s)

    def holding_up(self, on: bool) -> None:
        """A logic of this worker holds up the flow's epoch (step.py's last-resort wait), or stopped: while it
        does, no source of the cluster reads, the other workers run dry and their share of the quota is idle."""
        self._loop.call_soon_threadsafe(self.window.hurry, on)

    def wait_changed(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    @property
    def halt_reason(self) -> str | None:
        """Why a configuration error halted the flow; None while it runs."""
        return self.outcomes.halt_reason

    def check(self) -> None:
        """Raise when the flow must stop: a configuration error halted the engine, or its loop died."""
        if self.halt_reason is not None:
            raise EngineHalted(self.halt_reason)
        if not self._thread.is_alive():
            raise EngineHalted(f"reviewstream: the Bedrock engine of worker {self.worker} stopped unexpectedly")

    def close(self) -> None:
        async def shutdown() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client_cm is not None:
                await self._client_cm.__aexit__(None, None, None)

        self.buffers.unregister(id(self))
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    # -- event loop side -------------------------------------------------------------------------------

    def _outstanding_add(self, n: int) -> None:
        self._outstanding += n
        self.buffers.set(id(self), self._outstanding + sum(self._held_back.values()))
        metrics.ENRICH_BUFFERED.labels(self.worker).set(self._outstanding)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._open_client())
        except BaseException as err:  # reported to the constructor's caller
            self._start_error = err
            self._ready.set()
            return
        self._wake = asyncio.Event()
        self._loop.create_task(self._dispatch())
        self._ready.set()
        self._loop.run_forever()

    async def _open_client(self) -> None:
        self._client_cm = self._factory(self.settings)
        self._client = await self._client_cm.__aenter__()

    def _enqueue(self, jobs: list[Job], front: bool) -> None:
        if front:
            self._pending.extendleft(reversed(jobs))
        else:
            self._pending.extend(jobs)
        assert self._wake is not None
        self._wake.set()

    def _take_request(self) -> list[Job]:
        first = self._pending.popleft()
        if first.solo or self.settings.bedrock_reviews_per_request == 1 or not self.audit.packing:
            return [first]
        jobs = [first]
        skipped: list[Job] = []
        while self._pending and len(jobs) < self.settings.bedrock_reviews_per_request:
            job = self._pending.popleft()
            (skipped if job.solo else jobs).append(job)
        self._pending.extendleft(reversed(skipped))
        return jobs

    async def _dispatch(self) -> None:
        assert self._wake is not None
        while True:
            while self._pending and self._in_flight < self.window.current and self.halt_reason is None:
                if (delay := self.window.delay()) > 0:
                    if self._pace_timer is None:
                        self._pace_timer = self._loop.call_later(delay, self._paced)
                    break
                self.window.on_send()
                jobs = self._take_request()
                self._in_flight += 1
                metrics.BEDROCK_IN_FLIGHT.labels(self.worker).set(self._in_flight)
                self._loop.create_task(self._request(jobs, self._in_flight, self.load.started()))
            self._wake.clear()
            await self._wake.wait()

    def _paced(self) -> None:
        self._pace_timer = None
        assert self._wake is not None
        self._wake.set()

    async def _request(self, jobs: list[Job], in_flight: int, load: int) -> None:
        """One request; `in_flight` counts this worker's requests in flight at its start, `load` this process's,
        itself included."""
        started = time.monotonic()
        alone_at_min = len(jobs) == 1 and self.window.at_minimum
        for job in jobs:
            job.attempts += 1
            job.alone_at_min = alone_at_min
        self.stats.requests += 1
        token = id(jobs)
        with self._changed:
            self._starts[token] = started
        try:
            answer = await converse(self._client, self.settings, jobs)
            if isinstance(answer, CallError):
                self.outcomes.failed(jobs, answer, started)
            else:
                self.outcomes.answered(jobs, answer, started, in_flight, load)
        except Exception as exc:  # a bug in handling the answer must not strand its reviews
            log.exception("bedrock.answer_handling_failed worker=%s reviews=%d", self.worker, len(jobs))
            error = CallError(ErrorKind.INVALID, "bad_response", f"could not handle the response: {exc!r}")
            for job in jobs:
                if not job.done:
                    self.outcomes.after_failure(job, error, packed=len(jobs) > 1)
        finally:
            # After the results are in their sinks: a logic that sees this request gone also sees its results.
            with self._changed:
                del self._starts[token]
                self._recent_s.append(time.monotonic() - started)
            self._in_flight -= 1
            self.load.finished()
            metrics.BEDROCK_IN_FLIGHT.labels(self.worker).set(self._in_flight)
            metrics.BEDROCK_LIMIT.labels(self.worker).set(self.window.current)
            metrics.BEDROCK_PACE.labels(self.worker).set(self.window.pace_rps or 0.0)
            assert self._wake is not None
            self._wake.set()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _complete(self, job: Job, result: EnrichOutput) -> None:
        job.done = True
        job.sink.append((time.monotonic(), result))
        with self._changed:
            self._outstanding_add(-1)
            self._changed.notify_all()
