"""Where a backfill keeps its files in S3, and reading and writing them.

Under BACKFILL_JOB_URL (`s3://bucket/prefix`), per run:

    <run>/run.json                     what the run is (its input, model, arrival time)
    <run>/input/<job>/records.jsonl    the job's input: {"recordId": review id, "modelInput": body} per line
    <run>/reviews/<job>.jsonl          the reviews of that job, to turn its answers back into documents
    <run>/output/<job>/...             where Bedrock writes `records.jsonl.out` and `manifest.json.out`
    <run>/report.json                  the run's totals when it ends

The reviews file is written before the input file and the input before the job is submitted: a job name that
has an input file is a chunk already cut, so a restart re-submits it under the same name and token (Bedrock
answers with the existing job) and never cuts its reviews again.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import orjson

from dataflow.records import Review

INPUT_FILE = "records.jsonl"


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

    def write_chunk(self, job: str, reviews: list[Review], lines: list[bytes]) -> None:
        """The reviews file first, then the input file: an input file always has its reviews."""
        self._put(f"{self.root}/reviews/{job}.jsonl", b"\n".join(encode_review(r) for r in reviews) + b"\n")
        self._put(self.input_prefix(job) + INPUT_FILE, b"\n".join(lines) + b"\n")

    def chunk_jobs(self) -> list[str]:
        """Names of the jobs whose input file exists (cut by this run before), in name order."""
        jobs: set[str] = set()
        for key in self._keys(f"{self.root}/input/"):
            if key.endswith("/" + INPUT_FILE):
                jobs.add(key[len(f"{self.root}/input/") :].split("/", 1)[0])
        return sorted(jobs)

    def reviews(self, job: str) -> list[Review]:
        body = self._get(f"{self.root}/reviews/{job}.jsonl") or b""
        return [decode_review(line) for line in body.splitlines() if line.strip()]

    def output_lines(self, job: str) -> Iterator[dict[str, Any]]:
        """Every line of the job's `*.jsonl.out` files (Bedrock may nest them under a job-id folder)."""
        for key in self._keys(self.output_prefix(job)):
            if key.endswith(".jsonl.out"):
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
                for line in io.BytesIO(body.read()):
                    if line.strip():
                        yield orjson.loads(line)

    def manifest(self, job: str) -> dict[str, Any] | None:
        for key in self._keys(self.output_prefix(job)):
            if key.endswith("manifest.json.out"):
                return orjson.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        return None

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
