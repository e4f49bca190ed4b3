"""Write sink batches on a thread of their own, so a slow OpenSearch does not stall the Bytewax worker.

A Bytewax sink runs on its worker's thread: while a bulk request waits (a merge, a refresh, a GC pause, a
congested domain: hundreds of milliseconds are common), that worker reads no Kinesis records and hands no
reviews to Bedrock. This writer takes the batch and returns; one thread per sink partition writes what has
queued, in order, merging what queued meanwhile into one call (fewer, larger bulk requests under load).

Bounded: `submit` waits while `max_pending` items are queued, so a sink that cannot keep up still holds
back the flow. Durability is the caller's: results are acknowledged through `dataflow.channels.store_acks`, and the
enrichment step keeps each one in its checkpoint until then. A failure (`OpenSearchHalt`) stops the thread
and is raised on the worker by the next `submit`, `flush` or `close` (and by the ledger's `check`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class BackgroundWriter(Generic[T]):
    def __init__(
        self,
        write: Callable[[list[T]], None],
        max_pending: int,
        name: str,
        on_error: Callable[[BaseException], None] | None = None,
        on_pending: Callable[[int], None] | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self._write = write
        self._max = max_pending
        self._on_error = on_error
        self._on_pending = on_pending or (lambda n: None)
        self._cond = threading.Condition()
        self._queue: deque[list[T]] = deque()
        self._pending = 0  # queued or being written
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def submit(self, items: list[T]) -> None:
        """Queue `items`; waits while the writer is `max_pending` behind (one batch is always admitted)."""
        if not items:
            return
        with self._cond:
            while self._error is None and self._pending and self._pending + len(items) > self._max:
                self._cond.wait()
            self._raise()
            self._queue.append(items)
            self._pending += len(items)
            self._on_pending(self._pending)
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait until everything submitted is written (or raise what stopped the writer)."""
        with self._cond:
            while self._error is None and self._pending:
                self._cond.wait()
            self._raise()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                items: list[T] = []
                while self._queue:
                    items.extend(self._queue.popleft())
            try:
                self._write(items)
            except BaseException as err:  # handed to the worker thread, which raises it
                log.error("sink.writer_stopped error=%s: %s", type(err).__name__, err)
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                if self._on_error is not None:
                    self._on_error(err)
                return
            with self._cond:
                self._pending -= len(items)
                self._on_pending(self._pending)
                self._cond.notify_all()
