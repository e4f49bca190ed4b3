"""Parse and validate one Kinesis record into a `Review`, or a `DeadLetter` saying exactly why not.

Bad input never raises: every failure becomes a dead letter with `stage="parse"`, an `error_type` for
dashboards and a readable reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from dataflow.records import MAX_ID_BYTES, DeadLetter, KinesisRecord, Review, id_fits, truncate_raw

KNOWN_FIELDS = frozenset({"review_id", "user_id", "date_time", "text", "label", "source"})
LABELS = ("positive", "negative")
MAX_ID_CHARS = 512


class ParseError(ValueError):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _identifier(doc: dict[str, Any], name: str, document_id: bool = False) -> str:
    """A non-empty string or integer field; the review id must fit OpenSearch's `_id` (512 UTF-8 bytes)."""
    value = doc.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ParseError("missing_field", f"field '{name}' is missing or empty")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ParseError("bad_field", f"field '{name}' must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        raise ParseError("bad_field", f"field '{name}' is longer than {MAX_ID_CHARS} characters")
    if document_id and not id_fits(text):
        size = len(text.encode("utf-8"))
        raise ParseError(
            "id_too_long", f"field '{name}' is {size} bytes in UTF-8, over OpenSearch's {MAX_ID_BYTES}-byte _id limit"
        )
    return text


def normalise_date(value: Any) -> str:
    """epoch milliseconds or ISO-8601 -> ISO-8601 UTC with milliseconds."""
    if isinstance(value, bool) or value is None:
        raise ParseError("bad_date", f"field 'date_time' must be epoch milliseconds or ISO-8601, got {value!r}")
    if isinstance(value, int | float):
        try:
            moment = datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise ParseError("bad_date", f"field 'date_time' {value!r} is out of range") from err
    elif isinstance(value, str):
        stamp = value.strip()
        if stamp.isdigit():
            return normalise_date(int(stamp))
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError as err:
            raise ParseError("bad_date", f"field 'date_time' {value!r} is not ISO-8601") from err
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        raise ParseError("bad_date", f"field 'date_time' must be epoch milliseconds or ISO-8601, got {value!r}")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _review(record: KinesisRecord, max_chars: int) -> Review:
    try:
        decoded = record.data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError("invalid_utf8", f"record is not valid UTF-8: {err.reason} at byte {err.start}") from err
    try:
        doc = orjson.loads(decoded)
    except orjson.JSONDecodeError as err:
        raise ParseError("invalid_json", f"record is not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ParseError("not_object", f"record is a JSON {type(doc).__name__}, not an object")
    review_id = _identifier(doc, "review_id", document_id=True)
    try:
        text = doc.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ParseError("missing_text", "field 'text' is missing, empty or not a string")
        if len(text) > max_chars:
            raise ParseError("text_too_long", f"field 'text' has {len(text)} characters, over the {max_chars} limit")
        user_id = _identifier(doc, "user_id")
        if "date_time" not in doc:
            raise ParseError("missing_field", "field 'date_time' is missing")
        date_time = normalise_date(doc["date_time"])
        label = doc.get("label")
        if label is not None:
            if not isinstance(label, str) or label.strip().lower() not in LABELS:
                raise ParseError("bad_label", f"field 'label' {label!r} is not 'positive' or 'negative'")
            label = label.strip().lower()
        source = doc.get("source")
        if source is not None and not isinstance(source, str):
            raise ParseError("bad_field", "field 'source' must be a string")
    except ParseError as err:
        err.review_id = review_id  # type: ignore[attr-defined]
        raise
    return Review(
        review_id=review_id,
        user_id=user_id,
        date_time=date_time,
        text=text,
        shard_id=record.shard_id,
        sequence_number=record.sequence_number,
        arrival_ms=record.arrival_ms,
        label=label,
        source=source,
        extra={k: v for k, v in doc.items() if k not in KNOWN_FIELDS},
        raw=record.data,
    )


def parse_record(record: KinesisRecord, max_chars: int) -> Review | DeadLetter:
    """The parse step: a valid `Review`, or a parse-stage `DeadLetter` with the reason."""
    try:
        return _review(record, max_chars)
    except ParseError as err:
        review_id = getattr(err, "review_id", None)
        return DeadLetter(
            doc_id=review_id or record.dead_letter_id,
            stage="parse",
            error_type=err.error_type,
            error=str(err),
            raw=truncate_raw(record.data),
            shard_id=record.shard_id,
            sequence_number=record.sequence_number,
            attempts=0,
            review_id=review_id,
        )
