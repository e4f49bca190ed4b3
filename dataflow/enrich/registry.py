"""One enrichment engine per Bytewax worker thread, created on first use, for one built flow."""

from __future__ import annotations

import threading

from dataflow.channels.backpressure import BufferGauge
from dataflow.enrich.audit import PackingAudit
from dataflow.enrich.bedrock import ClientFactory, aiobotocore_client
from dataflow.enrich.concurrency.load import ProcessLoad
from dataflow.enrich.engine import EnrichEngine
from dataflow.settings import Settings


class EngineRegistry:
    """The engines of one flow, and the backpressure gauge they report to (`buffers`, read by the source)."""

    def __init__(
        self,
        settings: Settings,
        client_factory: ClientFactory = aiobotocore_client,
        buffers: BufferGauge | None = None,
    ) -> None:
        self.settings = settings
        self.client_factory = client_factory
        self.buffers = buffers or BufferGauge()
        self.load = ProcessLoad()  # requests in flight across this flow's engines, for the latency fit
        # Whether this process's packed answers agree with answers alone: one body of evidence for all its engines
        self.audit = PackingAudit.from_settings("process", settings)
        self._engines: dict[int, EnrichEngine] = {}
        self._lock = threading.Lock()
        # Engines start with their first review; until then this stands in for them, so the source's
        # first reads are already bounded by the enrichment buffer.
        self.buffers.register(id(self), settings.max_buffered_reviews)

    def for_current_worker(self) -> EnrichEngine:
        ident = threading.get_ident()
        with self._lock:
            engine = self._engines.get(ident)
            if engine is None:
                engine = EnrichEngine(
                    self.settings,
                    self.client_factory,
                    str(len(self._engines)),
                    self.buffers,
                    load=self.load,
                    audit=self.audit,
                )
                self._engines[ident] = engine
                self.buffers.unregister(id(self))
            return engine

    def engines(self) -> list[EnrichEngine]:
        with self._lock:
            return list(self._engines.values())

    def close(self) -> None:
        self.buffers.unregister(id(self))
        for engine in self.engines():
            engine.close()
        with self._lock:
            self._engines.clear()
