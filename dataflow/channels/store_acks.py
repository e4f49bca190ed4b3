"""Which results the OpenSearch writer has stored, so the enrichment step keeps the rest in its checkpoint.

The results sink writes in the background (dataflow/opensearch_sink/background_writer.py): a slow bulk request
must not stop the worker from reading Kinesis and keeping Bedrock busy. But then a result can leave the enrichment
step, and its epoch can close and its checkpoint commit, before OpenSearch has it. So the enrichment logic keeps
every result it emitted in its snapshot until the writer reports it stored here; a crash before that re-enriches
it on resume (the write is idempotent). One ledger per process: Bytewax hands a worker's results to the sink
partition of the same worker, and a key's logic lives in one worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

Key = tuple[str, str]  # (shard id, sequence number)


class StoreAcks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stored: set[Key] = set()
        self._error: BaseException | None = None

    def stored(self, keys: Iterable[Key]) -> None:
        """The writer stored these (as documents or as index dead letters)."""
        with self._lock:
            self._stored.update(keys)

    def claim(self, pending: dict[Key, Any]) -> None:
        """Drop from `pending` (and from the ledger) every key stored since the last claim."""
        if not pending:
            return
        with self._lock:
            if not self._stored:
                return
            for key in [k for k in pending if k in self._stored]:
                del pending[key]
                self._stored.discard(key)

    def failed(self, error: BaseException) -> None:
        """The writer stopped (a halt): every step that checks the ledger raises it, so the flow stops."""
        with self._lock:
            self._error = self._error or error

    def check(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def __len__(self) -> int:
        with self._lock:
            return len(self._stored)
