"""The review record the producer puts on Kinesis (docs/DESIGN.md section 2), and its stable identifiers.

Everything here is deterministic: the same input review always encodes to the same bytes, so re-sending a
file re-sends the same ids and the pipeline's idempotent sink overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import orjson

Label = Literal["positive", "negative"]
LABELS: tuple[Label, ...] = ("positive", "negative")

# user_id: reviews are spread over a fixed pool of users, so one user writes several reviews as in real data.
USER_POOL = 10_000
# date_time: a deterministic spread over one year, so re-sends keep the same timestamp (no mtime, no clock).
DATE_WINDOW_START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
DATE_WINDOW_MS = 366 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Review:
    """One review as sent: the record contract's fields, nothing else."""

    review_id: str
    user_id: str
    date_time: int
    text: str
    label: Label
    source: str

    def to_json(self) -> bytes:
        """UTF-8 JSON, one object; the Kinesis record's data blob."""
        return orjson.dumps(
            {
                "review_id": self.review_id,
                "user_id": self.user_id,
                "date_time": self.date_time,
                "text": self.text,
                "label": self.label,
                "source": self.source,
            }
        )


def _digest(review_id: str) -> bytes:
    return hashlib.blake2b(review_id.encode("utf-8"), digest_size=16, person=b"reviewstream").digest()


def stable_user_id(review_id: str) -> str:
    """`user-NNNNN`, derived from the review id's hash (first 8 bytes) into a pool of USER_POOL users."""
    return f"user-{int.from_bytes(_digest(review_id)[:8], 'big') % USER_POOL:05d}"


def stable_date_time(review_id: str) -> int:
    """Epoch millis in [2024-01-01, 2025-01-01), derived from the review id's hash (last 8 bytes)."""
    return DATE_WINDOW_START_MS + int.from_bytes(_digest(review_id)[8:], "big") % DATE_WINDOW_MS


def make_review(review_id: str, text: str, label: Label, source: str) -> Review:
    """A Review whose user_id and date_time are derived from its id, so they are stable too."""
    return Review(
        review_id=review_id,
        user_id=stable_user_id(review_id),
        date_time=stable_date_time(review_id),
        text=text,
        label=label,
        source=source,
    )


_NOT_ID_CHARS = re.compile(r"[^a-z0-9_]+")


def slug(name: str) -> str:
    """A lowercase id fragment: runs of anything but [a-z0-9_] become '-' ('IMDB Dataset' -> 'imdb-dataset')."""
    return _NOT_ID_CHARS.sub("-", name.lower()).strip("-") or "x"


def parse_label(raw: str) -> Label | None:
    """'positive'/'negative' (any case, surrounding spaces, or 'pos'/'neg') -> Label; anything else -> None."""
    value = raw.strip().lower()
    if value in ("positive", "pos"):
        return "positive"
    if value in ("negative", "neg"):
        return "negative"
    return None
