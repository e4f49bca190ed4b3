"""Prometheus metrics of the pipeline (docs/DESIGN.md section 5), served on METRICS_PORT.

One module-level registry per process: every worker thread updates the same collectors.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RECORDS_READ = Counter("reviewstream_records_read_total", "Kinesis records read", ["shard"])
SHARD_LAG_MS = Gauge("reviewstream_shard_millis_behind_latest", "MillisBehindLatest of the last GetRecords", ["shard"])
KINESIS_ERRORS = Counter("reviewstream_kinesis_errors_total", "Kinesis read errors by kind", ["error_type"])
REVIEWS_ENRICHED = Counter("reviewstream_reviews_enriched_total", "Reviews enriched by the model")
DEAD_LETTERS = Counter(
    "reviewstream_dead_letters_total", "Records sent to the dead-letter index", ["stage", "error_type"]
)
BEDROCK_REQUESTS = Counter("reviewstream_bedrock_requests_total", "Bedrock requests by outcome", ["outcome"])
BEDROCK_THROTTLES = Counter("reviewstream_bedrock_throttles_total", "Bedrock requests throttled")
BEDROCK_RETRIES = Counter("reviewstream_bedrock_retries_total", "Reviews re-queued for another attempt")
BEDROCK_LATENCY = Histogram(
    "reviewstream_bedrock_latency_seconds",
    "Bedrock request latency",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
BEDROCK_IN_FLIGHT = Gauge("reviewstream_bedrock_in_flight", "Bedrock requests in flight", ["worker"])
BEDROCK_LIMIT = Gauge("reviewstream_bedrock_concurrency_limit", "Current adaptive concurrency limit", ["worker"])
BEDROCK_PACE = Gauge(
    "reviewstream_bedrock_pace_rps", "Requests per second the quota pacer allows (0: not pacing)", ["worker"]
)
BEDROCK_TOKENS = Counter("reviewstream_bedrock_tokens_total", "Bedrock tokens", ["direction"])
BEDROCK_COST = Counter("reviewstream_bedrock_cost_usd_total", "Estimated Bedrock cost in USD")
PACKING_AUDITS = Counter(
    "reviewstream_packing_audits_total",
    "Packed answers compared with the review's answer alone (enrich/audit.py), by result",
    ["result"],
)
ENRICH_BUFFERED = Gauge("reviewstream_enrich_buffered_reviews", "Reviews held by the enrichment step", ["worker"])
DOCS_INDEXED = Counter("reviewstream_documents_indexed_total", "Documents indexed", ["index"])
INDEX_RETRIES = Counter("reviewstream_index_retries_total", "Bulk items retried", ["reason"])
INDEX_LATENCY = Histogram(
    "reviewstream_index_latency_seconds",
    "Time to index one bulk batch, retries included",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
INDEX_PENDING = Gauge(
    "reviewstream_index_pending_documents", "Results handed to the background writer, not yet stored", ["worker"]
)
END_TO_END = Histogram(
    "reviewstream_end_to_end_seconds",
    "Kinesis arrival to indexed",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
BACKFILL_RECORDS = Gauge("reviewstream_backfill_records", "Records of the backfill's jobs: total, done", ["state"])
BACKFILL_ETA = Gauge("reviewstream_backfill_eta_seconds", "Estimated seconds until the slowest running job is done")
BACKFILL_JOBS = Gauge("reviewstream_backfill_jobs", "The backfill's batch jobs by status", ["status"])
# Served by the recovery supervisor (its own process and port, RECOVERY_METRICS_PORT), not by the dataflow.
RECOVERY_BACKUP_AGE = Gauge(
    "reviewstream_recovery_backup_age_seconds",
    "Seconds since this partition's copy in the recovery store was last current (readiness fails past a bound)",
    ["partition"],
)
RECOVERY_BACKUP_FAILURES = Counter("reviewstream_recovery_backup_failures_total", "Recovery store backup errors")


class EpochClock:
    """When this process last saw the cluster complete an epoch (so a checkpoint), for an alert on its age.

    Bytewax calls a source partition's `next_batch` in epoch e + 1 only once the whole dataflow, every worker of
    every process, has finished epoch e (its probe sits after the recovery writes, or after the sinks without
    recovery): so the first call after a partition's snapshot marks an epoch completed (`completed`). Before the
    first one, the age counts from the start: a cluster that never completes an epoch shows a growing age (a
    stalled frontier re-reads everything since its start on a restart)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def completed(self) -> None:
        with self._lock:
            self._last = self._clock()

    def age_s(self) -> float:
        with self._lock:
            return max(0.0, self._clock() - self._last)


EPOCHS = EpochClock()
EPOCH_AGE = Gauge(
    "reviewstream_epoch_completed_age_seconds",
    "Seconds since the cluster last completed an epoch (hence a checkpoint), or since the start before the first",
)
EPOCH_AGE.set_function(EPOCHS.age_s)


def drop_shard(shard_id: str) -> None:
    """Forget a shard's label sets (it left the listing: nothing will report for it again)."""
    for metric in (RECORDS_READ, SHARD_LAG_MS):
        with contextlib.suppress(KeyError):
            metric.remove(shard_id)


_started = False
_lock = threading.Lock()


def start_metrics_server(port: int) -> None:
    """Serve /metrics once per process; port 0 disables it, a taken port is logged, not fatal."""
    global _started
    with _lock:
        if _started or port == 0:
            return
        try:
            start_http_server(port)
            log.info("metrics.serving port=%d", port)
        except OSError as err:
            log.warning("metrics.port_unavailable port=%d error=%s", port, err)
        _started = True
