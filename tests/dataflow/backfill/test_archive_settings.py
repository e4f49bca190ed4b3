"""The archive reader (the producer's formats, its ids) and the BACKFILL_* settings."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from dataflow.backfill.archive import archive_lines, producer_fields
from dataflow.parse import parse_record
from dataflow.records import DeadLetter, KinesisRecord, Review
from dataflow.settings import SettingsError, load_backfill_settings
from producer.records import stable_date_time, stable_user_id
from producer.sources import CsvSource

BASE = {"BACKFILL_JOB_URL": "s3://jobs/backfill", "BACKFILL_ROLE_ARN": "arn:aws:iam::123456789012:role/batch"}


def parsed(data: bytes) -> Review | DeadLetter:
    return parse_record(KinesisRecord("archive", "1", "", 1, data), 20_000)


@pytest.mark.parametrize("review_id", ["imdb-1", "reviews-42", "synthetic-7-3"])
def test_derived_fields_agree_with_the_producer(review_id: str) -> None:
    assert producer_fields(review_id) == (stable_user_id(review_id), stable_date_time(review_id))


def test_a_producer_csv_gives_the_producers_ids_and_bad_rows_become_dead_letters(tmp_path) -> None:
    path = tmp_path / "IMDB Dataset.csv"
    path.write_text('review,sentiment\n"Loved it, truly.",positive\n"",negative\nMeh.,neutral\n', encoding="utf-8")
    records = [parsed(line) for line in archive_lines(str(path), None)]
    producer = list(CsvSource(path))  # the producer skips the two bad rows; the backfill dead-letters them
    assert isinstance(records[0], Review) and records[0].review_id == producer[0].review_id == "imdb-dataset-1"
    assert records[0].user_id == producer[0].user_id and records[0].label == "positive"
    assert [(r.error_type, r.doc_id) for r in records[1:]] == [("missing_text", "imdb-dataset-2"),
                                                               ("bad_label", "imdb-dataset-3")]  # fmt: skip


def test_jsonl_lines_are_records_as_on_the_stream(tmp_path) -> None:
    path = tmp_path / "reviews.jsonl"
    good = {"review_id": "a", "user_id": "u", "date_time": 0, "text": "Nice."}
    path.write_bytes(orjson.dumps(good) + b"\n\n{oops\n")
    records = [parsed(line) for line in archive_lines(str(path), None)]
    assert isinstance(records[0], Review) and isinstance(records[1], DeadLetter)
    assert records[1].error_type == "invalid_json" and len(records) == 2


def test_settings_need_exactly_one_input_and_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="BACKFILL_ARCHIVE / BACKFILL_FROM"):
        load_backfill_settings(BASE)
    with pytest.raises(SettingsError, match="BACKFILL_ROLE_ARN"):
        load_backfill_settings({**BASE, "BACKFILL_ROLE_ARN": "batch", "BACKFILL_ARCHIVE": "x.jsonl"})
    with pytest.raises(SettingsError, match="BACKFILL_MAX_RECORDS"):
        load_backfill_settings({**BASE, "BACKFILL_ARCHIVE": "x.jsonl", "BACKFILL_MAX_RECORDS": "150"})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ranged = load_backfill_settings({**BASE, "BACKFILL_FROM": "2026-11-30T00:00:00Z"}, now=now)
    assert ranged.end == now and ranged.min_records == 100 and ranged.max_concurrent_jobs == 20
