"""OpenSearch output: idempotent, ordered bulk indexing of results and dead letters.

- `_id` is the review id (or shard-sequence for a dead letter without a usable one), so a replay overwrites
  and a review never has two documents;
- results carry an external version, the enrichment generation (ENRICHMENT_GENERATION) above the record's
  Kinesis arrival time in ms (`dataflow.opensearch_sink.generation`): a newer generation replaces older
  results, an older result of a review never replaces a newer one, and a replay of the same record in the
  same generation is a version conflict, which counts as stored; each result says its generation, prompt
  version and document schema version;
- dead letters are plain writes (the last one wins): each is an audit record keyed by the failing record,
  its content does not depend on order, and a write that cannot conflict can never be refused for order;
  each says the generation that wrote it, so a dead letter older than the review's document is visibly stale;
- errors are handled by kind (`dataflow.opensearch_sink.bulk`, `dataflow.opensearch_sink.errors`): a document bad on its
  own becomes an `index` dead letter; congestion is retried until it passes; a configuration problem (access
  still denied after OPENSEARCH_AUTH_GRACE_S, a wrong URL, a dead letter the dead-letter index refuses)
  raises `OpenSearchHalt`, which stops the flow before a checkpoint covers the records;
- results are written by a background thread (`dataflow.opensearch_sink.background_writer`, bounded by
  OPENSEARCH_MAX_PENDING_DOCS) when the flow passes a `StoreAcks` ledger: the worker goes on reading and
  enriching during a slow bulk, and the enrichment step keeps each result in its checkpoint until stored;
  dead letters are written on the worker (rare, and parse dead letters have no other checkpoint);
- index templates with explicit mappings are created at start when missing (templates.py);
- `OPENSEARCH_AUTH=sigv4` signs requests for Amazon OpenSearch Service (service `es`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from opensearchpy import OpenSearch

from dataflow import metrics
from dataflow.channels.store_acks import StoreAcks
from dataflow.opensearch_sink.background_writer import BackgroundWriter
from dataflow.opensearch_sink.bulk import BulkDoc, BulkWriter
from dataflow.opensearch_sink.client import opensearch_client
from dataflow.opensearch_sink.errors import OpenSearchHalt
from dataflow.opensearch_sink.generation import Generation, VersionError
from dataflow.opensearch_sink.templates import ensure_index_templates
from dataflow.records import DeadLetter, EnrichedReview, truncate_raw
from dataflow.settings import Settings

log = logging.getLogger(__name__)

SinkKind = Literal["results", "dead_letters"]


def write_dead_letters(writer: BulkWriter, settings: Settings, letters: dict[str, DeadLetter]) -> None:
    """Store dead letters; one the dead-letter index refuses halts the flow (nowhere else is left for it)."""
    if not letters:
        return
    generation = {"generation": settings.enrichment_generation}
    docs = {k: BulkDoc(d.document() | generation) for k, d in letters.items()}
    refused = writer.write(settings.opensearch_dlq_index, docs)
    if refused:
        doc_id, (error_type, reason) = next(iter(refused.items()))
        message = (
            f"the dead-letter index {settings.opensearch_dlq_index!r} (OPENSEARCH_DLQ_INDEX) refused "
            f"{len(refused)} dead letter(s), e.g. {doc_id[:80]!r}: {error_type} {reason}; fix its mapping"
        )
        log.error("opensearch.halt %s", message)
        raise OpenSearchHalt(message)


class ResultsPartition(StatelessSinkPartition[EnrichedReview]):
    """Writes enriched reviews to OPENSEARCH_INDEX; a document bad on its own becomes an index dead letter.

    With `acks`, batches are written in the background and each stored review is acknowledged there."""

    def __init__(self, writer: BulkWriter, settings: Settings, acks: StoreAcks | None = None, worker: int = 0) -> None:
        self._writer = writer
        self._settings = settings
        self._acks = acks
        self._generation = Generation(settings.enrichment_generation)
        self._background: BackgroundWriter[EnrichedReview] | None = None
        if acks is not None and settings.opensearch_max_pending_docs > 0:
            pending = metrics.INDEX_PENDING.labels(str(worker))
            self._background = BackgroundWriter(
                self._write,
                settings.opensearch_max_pending_docs,
                f"opensearch-writer-{worker}",
                on_error=acks.failed,
                on_pending=pending.set,
            )

    def write_batch(self, items: list[EnrichedReview]) -> None:
        if self._background is None:
            self._write(items)
        else:
            self._background.submit(items)

    def close(self) -> None:
        if self._background is not None:
            self._background.close()

    def _write(self, items: list[EnrichedReview]) -> None:
        started = time.monotonic()
        results: dict[str, EnrichedReview] = {}
        for item in items:  # duplicates in one batch collapse to the newest arrival
            held = results.get(item.review.review_id)
            if held is None or item.review.arrival_ms >= held.review.arrival_ms:
                results[item.review.review_id] = item
        stamp = self._generation.fields()
        docs: dict[str, BulkDoc] = {}
        unversioned: dict[str, tuple[str, str]] = {}
        for doc_id, r in results.items():
            source = r.document() | stamp
            try:
                docs[doc_id] = BulkDoc(source, self._generation.version(r.review.arrival_ms))
            except VersionError as err:  # an arrival time no version can order: the document alone is bad
                docs[doc_id] = BulkDoc(source)
                unversioned[doc_id] = ("version_out_of_range", str(err))
        writable = {doc_id: doc for doc_id, doc in docs.items() if doc_id not in unversioned}
        rejected = {**self._writer.write(self._settings.opensearch_index, writable), **unversioned}
        dead: dict[str, DeadLetter] = {}
        for doc_id, (error_type, reason) in rejected.items():
            review = results[doc_id].review
            metrics.DEAD_LETTERS.labels("index", error_type).inc()
            letter = DeadLetter.for_review(
                review, "index", error_type, f"OpenSearch rejected the document: {reason}", results[doc_id].attempts
            )
            letter = replace(letter, raw=truncate_raw(orjson.dumps(docs[doc_id].source)))
            dead[letter.doc_id] = letter
        write_dead_letters(self._writer, self._settings, dead)
        if self._acks is not None:
            self._acks.stored((item.review.shard_id, item.review.sequence_number) for item in items)
        now_ms = time.time() * 1000
        for doc_id, result in results.items():
            if doc_id not in rejected:
                metrics.END_TO_END.observe(max(0.0, (now_ms - result.review.arrival_ms) / 1000))
        metrics.INDEX_LATENCY.observe(time.monotonic() - started)


class DeadLetterPartition(StatelessSinkPartition[DeadLetter]):
    """Writes parse and enrichment dead letters to OPENSEARCH_DLQ_INDEX."""

    def __init__(self, writer: BulkWriter, settings: Settings) -> None:
        self._writer = writer
        self._settings = settings

    def write_batch(self, items: list[DeadLetter]) -> None:
        write_dead_letters(self._writer, self._settings, {d.doc_id: d for d in items})


class OpenSearchSink(DynamicSink[Any]):
    """`kind="results"` or `"dead_letters"`; each worker's partition prepares the index templates first.

    `acks` (results only) turns on background writing: pass the same ledger to the enrichment step."""

    def __init__(
        self,
        settings: Settings,
        kind: SinkKind,
        client_factory: Callable[[Settings], OpenSearch] = opensearch_client,
        acks: StoreAcks | None = None,
    ) -> None:
        if kind not in ("results", "dead_letters"):
            raise ValueError(f"unknown sink kind {kind!r}")
        self._settings = settings
        self._kind = kind
        self._client_factory = client_factory
        self._acks = acks

    def build(self, step_id: str, worker_index: int, worker_count: int) -> ResultsPartition | DeadLetterPartition:
        client = self._client_factory(self._settings)
        ensure_index_templates(client, self._settings)
        writer = BulkWriter(client, self._settings, prepare=lambda: ensure_index_templates(client, self._settings))
        if self._kind == "results":
            return ResultsPartition(writer, self._settings, self._acks, worker_index)
        return DeadLetterPartition(writer, self._settings)
