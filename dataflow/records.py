"""The items that flow through the dataflow, and the documents they become.

source -> `KinesisRecord` -> parse -> `Review` | `DeadLetter` -> enrich -> `EnrichedReview` | `DeadLetter`
-> sink. Everything is a plain picklable dataclass so Bytewax can snapshot it (in-flight reviews live in the
enrichment step's recovery state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

RAW_MAX_BYTES = 4096  # how much of a bad record the dead letter keeps
# The shape of the `processed_reviews` document: 1 before generations, 2 with generation, prompt_version and
# schema_version (docs/DESIGN.md section 2). Bump it when `EnrichedReview.document` changes its fields.
DOCUMENT_SCHEMA_VERSION = 2
MAX_ID_BYTES = 512  # OpenSearch refuses a whole bulk request with any longer `_id` (UTF-8 bytes, not characters)


def id_fits(doc_id: str) -> bool:
    """True when `doc_id` can be an OpenSearch `_id`."""
    return len(doc_id.encode("utf-8")) <= MAX_ID_BYTES


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class KinesisRecord:
    """One record as read from a shard, with where it came from."""

    shard_id: str
    sequence_number: str
    partition_key: str
    arrival_ms: int
    data: bytes

    @property
    def dead_letter_id(self) -> str:
        return f"{self.shard_id}-{self.sequence_number}"


@dataclass(frozen=True)
class Review:
    """A validated review, ready for the model."""

    review_id: str
    user_id: str
    date_time: str
    text: str
    shard_id: str
    sequence_number: str
    arrival_ms: int
    label: str | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""


@dataclass(frozen=True)
class EnrichedReview:
    """A review with the model's answer and what it cost."""

    review: Review
    summary: str
    sentiment: str
    model_id: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    attempts: int

    def document(self) -> dict[str, Any]:
        """The `processed_reviews` document (docs/DESIGN.md section 2); `_id` is the review id."""
        r = self.review
        doc: dict[str, Any] = {
            "review_id": r.review_id,
            "user_id": r.user_id,
            "date_time": r.date_time,
            "summary": self.summary,
            "sentiment": self.sentiment,
            "model_id": self.model_id,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
            "processed_at": utc_now_iso(),
            "arrived_at": datetime.fromtimestamp(r.arrival_ms / 1000, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "shard_id": r.shard_id,
            "sequence_number": r.sequence_number,
        }
        if r.label is not None:
            doc["label"] = r.label
        if r.source is not None:
            doc["source"] = r.source
        if r.extra:
            # Unknown producer fields are kept, but under one unindexed object so they can never clash
            # with the mapping of our own fields.
            doc["extra"] = r.extra
        return doc


def truncate_raw(data: bytes) -> str:
    """The original record as text for a dead letter: invalid UTF-8 replaced, cut to a safe size."""
    text = data[:RAW_MAX_BYTES].decode("utf-8", errors="replace")
    return text + ("…[truncated]" if len(data) > RAW_MAX_BYTES else "")


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be processed, with the stage and the reason."""

    doc_id: str
    stage: str  # parse | enrich | index
    error_type: str
    error: str
    raw: str
    shard_id: str
    sequence_number: str
    attempts: int = 0
    review_id: str | None = None

    def document(self) -> dict[str, Any]:
        """The `processed_reviews_dlq` document; `_id` is the review id, or shard-sequence without one."""
        doc: dict[str, Any] = {
            "stage": self.stage,
            "error_type": self.error_type,
            "error": self.error,
            "raw": self.raw,
            "shard_id": self.shard_id,
            "sequence_number": self.sequence_number,
            "attempts": self.attempts,
            "failed_at": utc_now_iso(),
        }
        if self.review_id is not None:
            doc["review_id"] = self.review_id
        return doc

    @classmethod
    def for_review(cls, review: Review, stage: str, error_type: str, error: str, attempts: int) -> DeadLetter:
        """A dead letter keyed by the review id, or by shard-sequence when the id cannot be an `_id`."""
        usable = id_fits(review.review_id)
        return cls(
            doc_id=review.review_id if usable else f"{review.shard_id}-{review.sequence_number}",
            stage=stage,
            error_type=error_type,
            error=error,
            raw=truncate_raw(review.raw or orjson.dumps({"review_id": review.review_id, "text": review.text})),
            shard_id=review.shard_id,
            sequence_number=review.sequence_number,
            attempts=attempts,
            review_id=review.review_id if usable else None,
        )
