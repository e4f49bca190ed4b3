"""Bulk indexing of one batch of documents until each is stored, or proven bad on its own.

- chunks are bounded by OPENSEARCH_BULK_MAX_DOCS and by OPENSEARCH_BULK_MAX_BYTES of serialized body (keep
  the bytes under the domain's payload limit: 10 MiB on small instance types, 100 MiB on large ones);
- a document may carry an external version (`dataflow.opensearch_sink.generation`): OpenSearch then keeps the
  highest, and a version conflict means a newer (or the same) result is already stored, which counts as
  stored; a conflict against an older generation (a version from another scheme) is refused instead, so a
  result that should have replaced is never counted as stored in silence;
- failures are handled by kind (`dataflow.opensearch_sink.errors`): congestion retried with backoff and full
  jitter until it passes (the sink blocks, which holds back the source), access denied retried for
  OPENSEARCH_AUTH_GRACE_S then halted, 413 split, 400 bisected; a configuration problem raises
  `OpenSearchHalt`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError

from dataflow import metrics
from dataflow.backoff import full_jitter
from dataflow.opensearch_sink.errors import (
    Failure,
    FailureKind,
    OpenSearchHalt,
    classify_item,
    classify_request,
)
from dataflow.opensearch_sink.generation import ARRIVAL_BITS, Conflict, ConflictKind
from dataflow.settings import Settings

log = logging.getLogger(__name__)

# Bisection ending with every document of a request this large guilty means the request, not the documents,
# is wrong (a bad parameter, say): that halts rather than dead-letters them all.
ALL_GUILTY_MIN = 3


@dataclass(frozen=True)
class BulkDoc:
    source: dict[str, Any]
    version: int | None = None  # external version: OpenSearch keeps the highest

    def lines(self, index: str, doc_id: str) -> bytes:
        meta: dict[str, Any] = {"_index": index, "_id": doc_id}
        if self.version is not None:
            meta["version"] = self.version
            meta["version_type"] = "external"
        return orjson.dumps({"index": meta}) + b"\n" + orjson.dumps(self.source) + b"\n"


def chunks(sizes: dict[str, int], max_docs: int, max_bytes: int) -> list[list[str]]:
    """Ids grouped in order into chunks of at most `max_docs` and `max_bytes` (an oversized one goes alone)."""
    out: list[list[str]] = []
    current: list[str] = []
    used = 0
    for doc_id, size in sizes.items():
        if current and (len(current) >= max_docs or used + size > max_bytes):
            out.append(current)
            current, used = [], 0
        current.append(doc_id)
        used += size
    if current:
        out.append(current)
    return out


class BulkWriter:
    """Writes documents to one index at a time; `write` returns the documents that are bad on their own."""

    def __init__(
        self,
        client: OpenSearch,
        settings: Settings,
        prepare: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._settings = settings
        self._prepare = prepare  # recreates the indices when one was deleted under us
        self._sleep = sleep
        self._clock = clock
        self._denied_since: float | None = None
        self._superseded: dict[tuple[int, int], int] = {}  # (ours, stored) generation -> documents

    def write(self, index: str, docs: dict[str, BulkDoc]) -> dict[str, tuple[str, str]]:
        """Store `docs` (by `_id`); returns `{_id: (error_type, reason)}` of the documents bad on their own."""
        body = {doc_id: doc.lines(index, doc_id) for doc_id, doc in docs.items()}
        versions = {doc_id: doc.version for doc_id, doc in docs.items() if doc.version is not None}
        pending = list(body)
        rejected: dict[str, tuple[str, str]] = {}
        recreated = False
        attempt = 0
        while pending:
            retry: list[str] = []
            missing: list[str] = []
            sizes = {doc_id: len(body[doc_id]) for doc_id in pending}
            s = self._settings
            for chunk in chunks(sizes, s.opensearch_bulk_max_docs, s.opensearch_bulk_max_bytes):
                self._send(index, chunk, body, versions, rejected, retry, missing)
            if missing:
                if recreated:
                    raise self._halt(
                        f"index {index!r} is missing and was not recreated; check OPENSEARCH_INDEX / "
                        "OPENSEARCH_DLQ_INDEX and the role's index permissions"
                    )
                log.warning("opensearch.index_missing index=%s documents=%d", index, len(missing))
                self._prepare()
                recreated = True
                retry.extend(missing)
            if retry:
                delay = full_jitter(min(attempt, 8), 0.2, self._settings.opensearch_backoff_max_s) + 0.05
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
        for (ours, stored), count in self._superseded.items():
            log.warning(
                "opensearch.superseded index=%s documents=%d generation=%d stored_generation=%d "
                "(a newer enrichment generation is stored: this flow's ENRICHMENT_GENERATION is behind)",
                index,
                count,
                ours,
                stored,
            )
        self._superseded.clear()
        return rejected

    def _send(
        self,
        index: str,
        chunk: list[str],
        body: dict[str, bytes],
        versions: dict[str, int],
        rejected: dict[str, tuple[str, str]],
        retry: list[str],
        missing: list[str],
    ) -> None:
        try:
            response = self._client.bulk(body=b"".join(body[doc_id] for doc_id in chunk))
        except (TransportError, OSConnectionError) as err:
            self._request_failed(index, chunk, body, versions, classify_request(err), rejected, retry, missing)
            return
        self._denied_since = None
        for doc_id, item in zip(chunk, response.get("items", []), strict=False):
            failure = classify_item(next(iter(item.values())))
            if failure.kind is FailureKind.CONFLICT:
                failure = self._conflict(doc_id, failure, versions.get(doc_id))
            if failure.kind in (FailureKind.STORED, FailureKind.CONFLICT):
                metrics.DOCS_INDEXED.labels(index).inc()
            elif failure.kind is FailureKind.RETRY:
                metrics.INDEX_RETRIES.labels("throttled" if failure.status == 429 else "unavailable").inc()
                retry.append(doc_id)
            elif failure.kind is FailureKind.AUTH:
                self._denied(failure)
                retry.append(doc_id)
            elif failure.kind is FailureKind.MISSING_INDEX:
                missing.append(doc_id)
            else:
                rejected[doc_id] = (failure.error_type, failure.reason)
        answered = len(response.get("items", []))
        if answered < len(chunk):  # never assume an unanswered document was stored
            retry.extend(chunk[answered:])

    def _request_failed(
        self,
        index: str,
        chunk: list[str],
        body: dict[str, bytes],
        versions: dict[str, int],
        failure: Failure,
        rejected: dict[str, tuple[str, str]],
        retry: list[str],
        missing: list[str],
    ) -> None:
        if failure.kind is FailureKind.RETRY:
            reason = "throttled" if failure.status == 429 else "unavailable"
            metrics.INDEX_RETRIES.labels(reason).inc(len(chunk))
            retry.extend(chunk)
        elif failure.kind is FailureKind.AUTH:
            self._denied(failure)
            retry.extend(chunk)
        elif failure.kind in (FailureKind.SPLIT, FailureKind.BISECT) and len(chunk) == 1:
            error_type = "request_too_large" if failure.kind is FailureKind.SPLIT else failure.error_type
            rejected[chunk[0]] = (error_type, f"the document alone is refused: {failure.describe()}")
        elif failure.kind in (FailureKind.SPLIT, FailureKind.BISECT):
            before = len(rejected)
            half = len(chunk) // 2
            log.info(
                "opensearch.bulk_%s index=%s documents=%d status=%s",
                failure.kind.value,
                index,
                len(chunk),
                failure.status,
            )
            self._send(index, chunk[:half], body, versions, rejected, retry, missing)
            self._send(index, chunk[half:], body, versions, rejected, retry, missing)
            if (
                failure.kind is FailureKind.BISECT
                and len(chunk) >= ALL_GUILTY_MIN
                and len(rejected) - before == len(chunk)
            ):
                raise self._halt(
                    f"OpenSearch refuses every document of a bulk request, even one by one ({failure.describe()}); "
                    "the request is wrong, not the documents"
                )
        else:
            raise self._halt(
                f"OpenSearch at OPENSEARCH_URL={self._settings.opensearch_url} refused a bulk request to {index!r}: "
                f"{failure.describe()}"
            )

    def _conflict(self, doc_id: str, failure: Failure, version: int | None) -> Failure:
        """A 409 is "already stored" only against the same or a newer generation (docstring of generation.py)."""
        if version is None:
            return failure
        ours = version >> ARRIVAL_BITS
        conflict = Conflict.of(failure.reason, ours)
        if conflict.kind is ConflictKind.SUPERSEDED and conflict.stored_version is not None:
            key = (ours, conflict.stored_version >> ARRIVAL_BITS)
            self._superseded[key] = self._superseded.get(key, 0) + 1
        if conflict.kind is not ConflictKind.NOT_REPLACED:
            return failure
        log.warning(
            "opensearch.not_replaced id=%s version=%d stored_version=%s", doc_id[:80], version, conflict.stored_version
        )
        return Failure(
            FailureKind.REJECT,
            failure.status,
            "version_conflict_older_generation",
            f"generation {ours} (version {version}) should replace the stored result, but its version "
            f"{conflict.stored_version} is higher: that document was not written with generation versions "
            '(docs/DEPLOY.md "Re-enrich with a new model or prompt")',
        )

    def _denied(self, failure: Failure) -> None:
        """Access denied: retried while within OPENSEARCH_AUTH_GRACE_S of the first refusal, then halt."""
        now = self._clock()
        if self._denied_since is None:
            self._denied_since = now
        waited = now - self._denied_since
        grace = self._settings.opensearch_auth_grace_s
        log.warning("opensearch.access_denied status=%s waited_s=%.1f grace_s=%.0f", failure.status, waited, grace)
        if waited >= grace:
            raise self._halt(
                f"OpenSearch denies access for {waited:.0f} s (OPENSEARCH_AUTH_GRACE_S={grace:.0f}): "
                f"{failure.describe()}; map the dataflow's IAM role to an OpenSearch role that may write "
                f"{self._settings.opensearch_index} and {self._settings.opensearch_dlq_index}, or fix "
                "OPENSEARCH_AUTH, the credentials or the clock"
            )

    @staticmethod
    def _halt(message: str) -> OpenSearchHalt:
        log.error("opensearch.halt %s", message)
        return OpenSearchHalt(message)
