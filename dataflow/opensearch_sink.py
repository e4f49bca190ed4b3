"""OpenSearch output: idempotent bulk indexing of results and dead letters.

- `_id` is the review id (or shard-sequence for a dead letter without one), so a replay overwrites and a
  review never has two documents;
- bulk requests are bounded by OPENSEARCH_BULK_MAX_DOCS and OPENSEARCH_BULK_MAX_BYTES (opensearch-py's
  `streaming_bulk` does the chunking);
- 429s, 5xx and connection errors are retried with backoff and full jitter until they succeed: a review is
  never dropped because OpenSearch was busy or down (the sink blocks, which holds back the source);
- any other per-item rejection (a mapping error, say) sends a dead letter with stage `index` and the reason;
- index templates with explicit mappings are created at start when missing;
- `OPENSEARCH_AUTH=sigv4` signs requests for Amazon OpenSearch Service (service `es`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth, helpers
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from dataflow import metrics
from dataflow.aimd import full_jitter
from dataflow.records import DeadLetter, EnrichedReview, truncate_raw
from dataflow.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
START_TIMEOUT_S = 60.0

PROCESSED_MAPPINGS: dict[str, Any] = {
    "dynamic": True,
    "properties": {
        "review_id": {"type": "keyword"},
        "user_id": {"type": "keyword"},
        "date_time": {"type": "date"},
        "summary": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "sentiment": {"type": "keyword"},
        "label": {"type": "keyword"},
        "source": {"type": "keyword"},
        "model_id": {"type": "keyword"},
        "input_tokens": {"type": "integer"},
        "output_tokens": {"type": "integer"},
        "latency_ms": {"type": "integer"},
        "attempts": {"type": "integer"},
        "processed_at": {"type": "date"},
        "arrived_at": {"type": "date"},
        "shard_id": {"type": "keyword"},
        "sequence_number": {"type": "keyword"},
        "extra": {"type": "object", "enabled": False},
    },
}
DLQ_MAPPINGS: dict[str, Any] = {
    "properties": {
        "review_id": {"type": "keyword"},
        "stage": {"type": "keyword"},
        "error_type": {"type": "keyword"},
        "error": {"type": "text"},
        "raw": {"type": "text"},
        "shard_id": {"type": "keyword"},
        "sequence_number": {"type": "keyword"},
        "attempts": {"type": "integer"},
        "failed_at": {"type": "date"},
    },
}


def opensearch_client(settings: Settings) -> OpenSearch:
    """A client for OPENSEARCH_URL; SigV4-signed for Amazon OpenSearch Service when asked."""
    auth = None
    if settings.opensearch_auth == "sigv4":
        import boto3

        credentials = boto3.session.Session().get_credentials()
        if credentials is None:
            raise RuntimeError("OPENSEARCH_AUTH=sigv4 but no AWS credentials were found")
        auth = Urllib3AWSV4SignerAuth(credentials, settings.aws_region, "es")
    return OpenSearch(
        hosts=[settings.opensearch_url],
        http_auth=auth,
        use_ssl=settings.opensearch_url.startswith("https://"),
        verify_certs=settings.opensearch_url.startswith("https://"),
        timeout=settings.opensearch_timeout_s,
        max_retries=0,
        retry_on_timeout=False,
        http_compress=settings.opensearch_auth == "sigv4",
    )


def ensure_index_templates(client: OpenSearch, settings: Settings) -> None:
    """Create the index templates and indices when missing, waiting up to a minute for OpenSearch."""
    templates = {
        "reviewstream-processed": (settings.opensearch_index, PROCESSED_MAPPINGS),
        "reviewstream-dlq": (settings.opensearch_dlq_index, DLQ_MAPPINGS),
    }
    deadline = time.monotonic() + START_TIMEOUT_S
    attempt = 0
    while True:
        try:
            for name, (index, mappings) in templates.items():
                if not client.indices.exists_index_template(name=name):
                    client.indices.put_index_template(
                        name=name, body={"index_patterns": [index], "template": {"mappings": mappings}}
                    )
                    log.info("opensearch.template_created name=%s index=%s", name, index)
                # Both indices exist from the start, so dashboards and reports never meet a missing one.
                if not client.indices.exists(index=index):
                    client.indices.create(index=index, ignore=400)  # 400: another worker just made it
            return
        except (OSConnectionError, TransportError) as err:
            status = getattr(err, "status_code", "N/A")
            if (isinstance(status, int) and status not in RETRY_STATUSES) or time.monotonic() > deadline:
                raise RuntimeError(
                    f"cannot prepare OpenSearch index templates at {settings.opensearch_url}: {err}"
                ) from err
            time.sleep(full_jitter(min(attempt, 5), 0.5, 5.0) + 0.1)
            attempt += 1


def _retryable(status: Any) -> bool:
    return not isinstance(status, int) or status in RETRY_STATUSES or status >= 500


def _item_error(info: dict[str, Any]) -> tuple[str, str]:
    error = info.get("error")
    if isinstance(error, dict):
        return str(error.get("type", "rejected")), str(error.get("reason", error))
    return "rejected", str(error)


class BulkWriter:
    """Writes documents to one index until each is stored or permanently rejected."""

    def __init__(
        self,
        client: OpenSearch,
        settings: Settings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._settings = settings
        self._sleep = sleep

    def write(self, index: str, docs: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
        """Index `docs` (by `_id`); returns `{_id: (error_type, reason)}` of the permanently rejected."""
        pending = dict(docs)
        rejected: dict[str, tuple[str, str]] = {}
        attempt = 0
        while pending:
            actions = [
                {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}
                for doc_id, source in pending.items()
            ]
            retry: dict[str, dict[str, Any]] = {}
            statuses: set[Any] = set()
            for ok, result in helpers.streaming_bulk(
                self._client,
                actions,
                chunk_size=self._settings.opensearch_bulk_max_docs,
                max_chunk_bytes=self._settings.opensearch_bulk_max_bytes,
                raise_on_error=False,
                raise_on_exception=False,
                max_retries=0,
            ):
                info = next(iter(result.values()))
                doc_id = str(info.get("_id"))
                if ok:
                    metrics.DOCS_INDEXED.labels(index).inc()
                elif _retryable(info.get("status")):
                    retry[doc_id] = pending[doc_id]
                    statuses.add(info.get("status"))
                else:
                    rejected[doc_id] = _item_error(info)
            if retry:
                delay = full_jitter(min(attempt, 8), 0.2, self._settings.opensearch_backoff_max_s) + 0.05
                reason = "throttled" if statuses == {429} else "unavailable"
                metrics.INDEX_RETRIES.labels(reason).inc(len(retry))
                log.warning(
                    "opensearch.bulk_retry index=%s documents=%d attempt=%d retry_in_s=%.2f",
                    index,
                    len(retry),
                    attempt + 1,
                    delay,
                )
                self._sleep(delay)
                attempt += 1
            pending = retry
        return rejected


def write_dead_letters(writer: BulkWriter, settings: Settings, letters: dict[str, DeadLetter]) -> None:
    """Store dead letters; one the DLQ itself rejects is logged at ERROR (nowhere else is left)."""
    if not letters:
        return
    lost = writer.write(settings.opensearch_dlq_index, {k: d.document() for k, d in letters.items()})
    for doc_id, (error_type, reason) in lost.items():
        log.error("opensearch.dead_letter_rejected id=%s error=%s %s", doc_id, error_type, reason)


class ResultsPartition(StatelessSinkPartition[EnrichedReview]):
    """Writes enriched reviews to OPENSEARCH_INDEX; a document it rejects becomes an index dead letter."""

    def __init__(self, writer: BulkWriter, settings: Settings) -> None:
        self._writer = writer
        self._settings = settings

    def write_batch(self, items: list[EnrichedReview]) -> None:
        started = time.monotonic()
        results = {i.review.review_id: i for i in items}  # a replayed duplicate collapses to one write
        docs = {doc_id: r.document() for doc_id, r in results.items()}
        rejected = self._writer.write(self._settings.opensearch_index, docs)
        dead: dict[str, DeadLetter] = {}
        for doc_id, (error_type, reason) in rejected.items():
            review = results[doc_id].review
            metrics.DEAD_LETTERS.labels("index", error_type).inc()
            dead[doc_id] = DeadLetter(
                doc_id=doc_id,
                stage="index",
                error_type=error_type,
                error=f"OpenSearch rejected the document: {reason}",
                raw=truncate_raw(orjson.dumps(docs[doc_id])),
                shard_id=review.shard_id,
                sequence_number=review.sequence_number,
                attempts=results[doc_id].attempts,
                review_id=doc_id,
            )
        write_dead_letters(self._writer, self._settings, dead)
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
    """`kind="results"` or `"dead_letters"`; each worker's partition prepares the index templates first."""

    def __init__(
        self,
        settings: Settings,
        kind: str,
        client_factory: Callable[[Settings], OpenSearch] = opensearch_client,
    ) -> None:
        if kind not in ("results", "dead_letters"):
            raise ValueError(f"unknown sink kind {kind!r}")
        self._settings = settings
        self._kind = kind
        self._client_factory = client_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> ResultsPartition | DeadLetterPartition:
        client = self._client_factory(self._settings)
        ensure_index_templates(client, self._settings)
        writer = BulkWriter(client, self._settings)
        if self._kind == "results":
            return ResultsPartition(writer, self._settings)
        return DeadLetterPartition(writer, self._settings)
