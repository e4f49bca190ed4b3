"""An archive as the backfill's input: JSONL or CSV, a local path or `s3://`, read into `KinesisRecord`s.

So the SAME parse step (dataflow/parse.py) judges every record and a bad one becomes the same dead letter:
- JSONL (`.jsonl`, `.json`, `.ndjson`): one record per line, exactly as the producer puts it on Kinesis;
- CSV with a `review_id` column: the record contract's columns (review_id, user_id, date_time, text, label,
  source; any other column is kept under `extra`);
- CSV with `review` and `sentiment` columns (the producer's `--csv` input, e.g. Kaggle's IMDB Dataset.csv):
  the producer's ids and derived fields (`<file stem slug>-<n>`, producer/records.py), so a review backfilled
  from the file and the same review sent by the producer are one document. A row the producer would skip
  (empty review, unknown sentiment) is a parse dead letter here, never dropped silently.

A record's "shard" is `archive`, its sequence number its line (JSONL) or row (CSV) number. Its arrival time
(the low bits of the document's external version) is the review's own date, bounded to 1970 .. the run's start
(`archive_arrival`): a review reaches the stream only after it is written, so any live delivery of it is at
least as new and an archive record never replaces it within a generation; a rerun writes the same version (a
no-op). Only a newer ENRICHMENT_GENERATION replaces archive results (docs/DESIGN.md section 9).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflow.records import KinesisRecord, Review

SHARD = "archive"
BATCH = 500
# The producer's derivations (producer/records.py), repeated because the dataflow image ships without the
# producer; tests/dataflow/backfill checks the two agree.
USER_POOL = 10_000
DATE_WINDOW_START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
DATE_WINDOW_MS = 366 * 24 * 3600 * 1000


def archive_arrival(review: Review, run_start_ms: int) -> Review:
    """The review with its own date as arrival, within 0 .. the run's start (a date the parse step normalised)."""
    try:
        written = int(datetime.fromisoformat(review.date_time.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        written = run_start_ms
    return replace(review, arrival_ms=min(max(0, written), run_start_ms))


def _digest(review_id: str) -> bytes:
    return hashlib.blake2b(review_id.encode("utf-8"), digest_size=16, person=b"reviewstream").digest()


def producer_fields(review_id: str) -> tuple[str, int]:
    """(user_id, date_time) as the producer derives them from a review id."""
    digest = _digest(review_id)
    user = f"user-{int.from_bytes(digest[:8], 'big') % USER_POOL:05d}"
    return user, DATE_WINDOW_START_MS + int.from_bytes(digest[8:], "big") % DATE_WINDOW_MS


def slug(stem: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", stem.lower()).strip("-") or "csv"


def text_lines(location: str, s3: Any) -> Iterator[str]:
    """The archive's lines, ends kept: a local file, or an S3 object streamed (never held whole)."""
    if location.startswith("s3://"):
        bucket, _, key = location.removeprefix("s3://").partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        first = True
        for raw in body.iter_lines(keepends=True):
            line = raw.decode("utf-8", errors="replace")
            yield line.removeprefix("\ufeff") if first else line
            first = False
        return
    with open(Path(location), encoding="utf-8-sig", errors="replace", newline="") as handle:
        yield from handle


def is_csv(location: str) -> bool:
    return location.lower().rsplit("/", 1)[-1].endswith((".csv", ".csv.txt"))


def csv_records(lines: Iterator[str], stem: str) -> Iterator[bytes]:
    """Each CSV row as the JSON record the producer would send (see the module docstring)."""
    csv.field_size_limit(max(csv.field_size_limit(), 16 * 1024 * 1024))
    reader = csv.reader(lines)
    header = [name.strip() for name in next(reader, None) or []]
    lowered = [name.lower() for name in header]
    contract = "review_id" in lowered
    if not contract and not {"review", "sentiment"} <= set(lowered):
        raise ValueError(f"BACKFILL_ARCHIVE: the CSV header {header!r} has neither review_id nor review+sentiment")
    number = 0
    for row in reader:
        if not row:
            continue
        number += 1
        if contract:
            yield orjson.dumps({header[i]: value for i, value in enumerate(row) if i < len(header)})
            continue
        cells = dict(zip(lowered, row, strict=False))
        review_id = f"{slug(stem)}-{number}"
        user, date = producer_fields(review_id)
        label = cells.get("sentiment", "").strip().lower() or None
        yield orjson.dumps(
            {"review_id": review_id, "user_id": user, "date_time": date, "text": cells.get("review", ""),
             "label": label, "source": f"csv:{stem}.csv"}
        )  # fmt: skip


def archive_lines(location: str, s3: Any) -> Iterator[bytes]:
    """Every record of the archive as bytes, in file order (blank JSONL lines are not records)."""
    lines = text_lines(location, s3)
    if is_csv(location):
        yield from csv_records(lines, Path(location.rsplit("/", 1)[-1]).stem)
        return
    for line in lines:
        if line.strip():
            yield line.rstrip("\r\n").encode("utf-8")


class _ArchivePartition(StatefulSourcePartition[KinesisRecord, int]):
    def __init__(self, location: str, s3: Any, arrival_ms: int, resume: int | None) -> None:
        self._lines = archive_lines(location, s3)
        self._arrival_ms = arrival_ms
        self._read = 0
        for _ in range(resume or 0):  # records before the snapshot were handed on already
            next(self._lines, None)
            self._read += 1

    def next_batch(self) -> list[KinesisRecord]:
        batch = []
        for data in self._lines:
            self._read += 1
            batch.append(KinesisRecord(SHARD, str(self._read), "", self._arrival_ms, data))
            if len(batch) >= BATCH:
                return batch
        if not batch:
            raise StopIteration
        return batch

    def snapshot(self) -> int:
        return self._read


class ArchiveSource(FixedPartitionedSource[KinesisRecord, int]):
    """One partition reading the archive in order; its snapshot is the number of records handed on."""

    def __init__(self, location: str, s3: Any, arrival_ms: int) -> None:
        self._location, self._s3, self._arrival_ms = location, s3, arrival_ms

    def list_parts(self) -> list[str]:
        return [SHARD]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ArchivePartition:
        return _ArchivePartition(self._location, self._s3, self._arrival_ms, resume_state)
