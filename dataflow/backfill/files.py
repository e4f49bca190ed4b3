"""Where a backfill keeps its files in S3, and reading and writing them page by page.

Under BACKFILL_JOB_URL (`s3://bucket/prefix`), per run:

    <run>/run.json                       what the run is (its input, model, start time)
    <run>/input/<job>/p<page>.jsonl      a job's input, one file per page of BACKFILL_PAGE_RECORDS records:
                                         {"recordId": <page 5 digits><index 6 digits>, "modelInput": body}
    <run>/reviews/<job>/p<page>.jsonl    the same page's reviews in the same order: a recordId maps back here
    <run>/chunks/<job>.json              the job's marker, written LAST: records, pages, kind, input positions
    <run>/input-complete.json            written once every record of the input is in a chunk
    <run>/output/<job>/...               where Bedrock writes `p<page>.jsonl.out` and `manifest.json.out`
    <run>/progress.json                  pages already indexed (committed once their epoch completed)
    <run>/report.json                    the run's totals when it ends

A job exists for the backfill once its marker does; pages without a marker (a chunk being filled when the
process died) are rewritten or deleted when the chunk is cut again. The marker is the durable hand-over from
the input side (dataflow/backfill/step.py) to the job side (dataflow/backfill/outputs.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import orjson

from dataflow.records import Review

RECORD_ID_DIGITS = (5, 6)  # page, index within the page: 11 characters, as in AWS's "CALL0000001" example


def record_id(page: int, index: int) -> str:
    """An alphanumeric recordId (AWS: "alphanumeric string") that locates the review: page and index."""
    return f"{page:0{RECORD_ID_DIGITS[0]}d}{index:0{RECORD_ID_DIGITS[1]}d}"


def parse_record_id(value: object) -> tuple[int, int] | None:
    """(page, index) of a recordId this backfill wrote, None for anything else."""
    if not isinstance(value, str) or len(value) != sum(RECORD_ID_DIGITS) or not value.isdigit():
        return None
    return int(value[: RECORD_ID_DIGITS[0]]), int(value[RECORD_ID_DIGITS[0] :])


def page_file(page: int) -> str:
    return f"p{page:05d}.jsonl"


class JobFiles:
    """The S3 files of one run, through a boto3 `s3` client."""

    def __init__(self, s3: Any, job_url: str, run_id: str) -> None:
        self.s3 = s3
        rest = job_url.removeprefix("s3://").split("/", 1)
        self.bucket = rest[0]
        self.root = "/".join(p for p in (rest[1].strip("/") if len(rest) > 1 else "", run_id) if p)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def input_prefix(self, job: str) -> str:
        return f"{self.root}/input/{job}/"

    def output_prefix(self, job: str) -> str:
        return f"{self.root}/output/{job}/"

    def _put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def _get(self, key: str) -> bytes | None:
        try:
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def read_json(self, name: str) -> dict[str, Any] | None:
        body = self._get(f"{self.root}/{name}")
        return None if body is None else orjson.loads(body)

    def write_json(self, name: str, doc: dict[str, Any]) -> None:
        self._put(f"{self.root}/{name}", orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    # -- pages and markers ------------------------------------------------------------------------------
    def write_page(self, job: str, page: int, reviews: list[Review], lines: list[bytes]) -> None:
        """The reviews first, then the input lines: an input page always has its reviews."""
        self._put(f"{self.root}/reviews/{job}/{page_file(page)}", b"\n".join(map(encode_review, reviews)) + b"\n")
        self._put(self.input_prefix(job) + page_file(page), b"\n".join(lines) + b"\n")

    def drop_pages_except(self, job: str, pages: list[int]) -> None:
        """Delete a job's input pages left by an earlier attempt at the same chunk (Bedrock reads the prefix)."""
        keep = {self.input_prefix(job) + page_file(p) for p in pages}
        for key in list(self._keys(self.input_prefix(job))):
            if key not in keep:
                self.s3.delete_object(Bucket=self.bucket, Key=key)

    def staged_pages(self, job: str) -> list[int]:
        """Pages written for `job` (so far without a marker), in order."""
        prefix = f"{self.root}/reviews/{job}/"
        return sorted(int(k[len(prefix) + 1 : -len(".jsonl")]) for k in self._keys(prefix) if k.endswith(".jsonl"))

    def write_marker(self, job: str, doc: dict[str, Any]) -> None:
        self.write_json(f"chunks/{job}.json", doc)

    def markers(self, known: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
        """The chunks' markers by job name (the chunks cut so far), those in `known` listed but not read again."""
        found = {}
        for key in self._keys(f"{self.root}/chunks/"):
            name = key.rsplit("/", 1)[1].removesuffix(".json")
            if key.endswith(".json") and name not in known:
                found[name] = orjson.loads(self._get(key) or b"{}")
        return found

    def page_reviews(self, job: str, page: int) -> list[Review]:
        body = self._get(f"{self.root}/reviews/{job}/{page_file(page)}") or b""
        return [decode_review(line) for line in body.splitlines() if line.strip()]

    def output_keys(self, job: str) -> dict[str, str]:
        """The job's output objects by file name (Bedrock nests them under a job-id folder)."""
        return {key.rsplit("/", 1)[1]: key for key in self._keys(self.output_prefix(job))}

    def output_lines(self, key: str) -> Iterator[dict[str, Any]]:
        """The lines of one `.jsonl.out` object, streamed (never held whole)."""
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        for line in body.iter_lines():
            if line.strip():
                yield orjson.loads(line)

    def manifest(self, job: str) -> dict[str, Any] | None:
        key = self.output_keys(job).get("manifest.json.out")
        return None if key is None else orjson.loads(self._get(key) or b"{}")

    def _keys(self, prefix: str) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]


def encode_review(review: Review) -> bytes:
    doc = asdict(review)
    doc["raw"] = review.raw.decode("utf-8", errors="replace")
    return orjson.dumps(doc)


def decode_review(line: bytes) -> Review:
    doc = orjson.loads(line)
    doc["raw"] = doc.get("raw", "").encode("utf-8")
    return Review(**doc)
