"""What an OpenSearch answer means for the documents in it: three kinds of failure, three answers.

A request-level failure is about the request, never about one document, so it is never turned into dead
letters as such (opensearch-py's bulk helper copies the request's status onto every item; we do not use it):
- congestion (connection errors, timeouts, 408, 429, 5xx): retry the same documents with backoff;
- access (401, 403: a role not yet mapped after a deploy, a skewed clock, bad credentials): retry for
  OPENSEARCH_AUTH_GRACE_S, then halt;
- size (413): split the request; a single document still too large is a bad document;
- validation (400): bisect to the document(s) that fail alone; only those are bad;
- anything else (404 on `_bulk`: a wrong OPENSEARCH_URL, say): halt.
Per item: 2xx stored; 409 `version_conflict_engine_exception` stored too (a newer or equal version of the
review is already there); 429/5xx retried; 404 `index_not_found_exception` means the index was deleted
(recreate it once, else halt); any other rejection (a mapping error) is a bad document.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import TransportError


class FailureKind(Enum):
    """What to do with a request or an item, by what OpenSearch answered."""

    RETRY = "retry"  # congestion: the same documents again, after a backoff
    AUTH = "auth"  # access denied: retried for OPENSEARCH_AUTH_GRACE_S, then a halt
    SPLIT = "split"  # 413: the request in halves
    BISECT = "bisect"  # 400: down to the documents refused alone
    HALT = "halt"  # a configuration problem
    STORED = "stored"
    CONFLICT = "conflict"  # a newer or equal version is stored: counts as stored
    MISSING_INDEX = "missing_index"  # the index was deleted under us: recreate it once
    REJECT = "reject"  # a document bad on its own


class OpenSearchHalt(RuntimeError):
    """A configuration problem, not a bad document: raised from the sink so the flow stops before a
    checkpoint covers the records; the message is one line naming what to fix."""


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    status: int | str
    error_type: str
    reason: str

    def describe(self) -> str:
        return f"{self.status} {self.error_type}: {self.reason}"


def _reason(info: Any) -> tuple[str, str]:
    """(error type, reason) from an OpenSearch error body, or an Amazon front-end body ({"message": ...})."""
    if isinstance(info, dict):
        error = info.get("error")
        if isinstance(error, dict):
            return str(error.get("type", "error")), str(error.get("reason", error))
        if error is not None:
            return str(error), str(error)
        message = info.get("message", info.get("Message"))
        if message is not None:
            return "aws_error", str(message)
    return "error", str(info)[:500]


def classify_request(err: Exception) -> Failure:
    """What to do when a whole bulk request failed."""
    if isinstance(err, OSConnectionError) or not isinstance(err, TransportError):
        return Failure(FailureKind.RETRY, "N/A", type(err).__name__, str(err)[:300])
    status = err.status_code
    error_type, reason = _reason(err.info)
    if not isinstance(status, int) or status in (408, 429) or status >= 500:
        kind = FailureKind.RETRY
    elif status in (401, 403):
        kind = FailureKind.AUTH
    elif status == 413:
        kind = FailureKind.SPLIT
    elif status == 400:
        kind = FailureKind.BISECT
    else:
        kind = FailureKind.HALT
    return Failure(kind, status, error_type, reason)


def classify_item(info: dict[str, Any]) -> Failure:
    """What to do with one item of a bulk answer."""
    status = info.get("status")
    error_type, reason = _reason(info) if info.get("error") is not None else ("", "")
    if isinstance(status, int) and 200 <= status < 300:
        kind = FailureKind.STORED
    elif status == 409 and error_type == "version_conflict_engine_exception":
        kind = FailureKind.CONFLICT
    elif not isinstance(status, int) or status in (408, 429) or status >= 500:
        kind = FailureKind.RETRY
    elif status in (401, 403):
        kind = FailureKind.AUTH
    elif status == 404 and error_type == "index_not_found_exception":
        kind = FailureKind.MISSING_INDEX
    else:
        kind = FailureKind.REJECT
    return Failure(kind, status if status is not None else "N/A", error_type or "rejected", reason)
