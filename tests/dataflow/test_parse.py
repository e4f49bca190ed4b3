"""Record parsing and validation: what becomes a review, what a parse dead letter."""

from __future__ import annotations

from dataflow.parse import parse_record
from dataflow.records import DeadLetter, Review
from tests.dataflow.helpers import record


def test_parse_keeps_extra_fields_and_normalises() -> None:
    rec = record(1, review_id=77, date_time="2024-03-01T10:00:00+02:00", label="Positive", country="NL")
    review = parse_record(rec, 1000)
    assert isinstance(review, Review)
    assert review.review_id == "77" and review.label == "positive"
    assert review.date_time == "2024-03-01T08:00:00.000Z"
    assert review.extra == {"country": "NL"}


def test_parse_epoch_millis() -> None:
    review = parse_record(record(1, date_time=1_700_000_000_123), 1000)
    assert isinstance(review, Review) and review.date_time == "2023-11-14T22:13:20.123Z"


def test_an_id_of_300_non_ascii_characters_is_a_parse_dead_letter_keyed_by_shard_sequence() -> None:
    rec = record(1, review_id="é" * 300)  # 300 characters, 600 bytes
    out = parse_record(rec, 20_000)
    assert isinstance(out, DeadLetter)
    assert out.stage == "parse" and out.error_type == "id_too_long"
    assert "600 bytes" in out.error and "512" in out.error
    assert out.doc_id == rec.dead_letter_id and out.review_id is None


def test_an_id_of_exactly_512_bytes_is_accepted() -> None:
    rid = "€" * 170 + "ab"  # 3 * 170 + 2 = 512 bytes
    out = parse_record(record(2, review_id=rid), 20_000)
    assert isinstance(out, Review) and out.review_id == rid
    out = parse_record(record(3, review_id=rid + "c"), 20_000)
    assert isinstance(out, DeadLetter) and out.error_type == "id_too_long"


def test_an_enrich_dead_letter_for_an_unusable_id_is_keyed_by_shard_sequence() -> None:
    review = Review("ü" * 300, "u", "2024-01-01T00:00:00.000Z", "t", "shardId-000000000001", "42", 0)
    letter = DeadLetter.for_review(review, "enrich", "ValidationException", "too long", 1)
    assert letter.doc_id == "shardId-000000000001-42" and letter.review_id is None
