"""Cutting into pages and jobs within the per-job quotas, alphanumeric record ids, and job names Bedrock accepts
(its own patterns, from botocore's model)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import boto3
import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from dataflow.backfill.chunks import Cutter, Limits, job_name, run_id_for
from dataflow.backfill.files import JobFiles, parse_record_id, record_id
from dataflow.records import Review


def review(i: int, review_id: str | None = None) -> Review:
    return Review(review_id or f"r{i}", "u", "2024-01-01T00:00:00.000Z", "text", "archive", str(i), 0)


def shape_pattern(name: str) -> str:
    model = botocore.session.get_session().get_service_model("bedrock")
    return model.shape_for(name).metadata["pattern"]


@pytest.fixture()
def files() -> Iterator[JobFiles]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="jobs")
        yield JobFiles(client, "s3://jobs/backfill", "bf-t")


def cut(files: JobFiles, reviews: list[Review], limits: Limits) -> Cutter:
    cutter = Cutter(files, "bf-t", limits, lambda r: {"text": r.text})
    for r in reviews:
        cutter.add(r)
    cutter.finish()
    return cutter


@settings(max_examples=8, deadline=None)
@given(total=st.integers(0, 120), low=st.integers(1, 10), extra=st.integers(0, 30), page=st.integers(1, 12))
def test_every_record_lands_in_exactly_one_page_of_one_chunk(total: int, low: int, extra: int, page: int) -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="jobs")
        files = JobFiles(client, "s3://jobs/backfill", "bf-t")
        cut(files, [review(i) for i in range(total)], Limits(low, 2 * low + extra, 10**9, page))
        markers = files.markers()
        pages = [(name, p) for name in sorted(markers) for p in markers[name]["pages"]]
        ids = [r.review_id for name, p in pages for r in files.page_reviews(name, p)]
        assert ids == [f"r{i}" for i in range(total)]
        for name, marker in markers.items():
            assert marker["records"] <= 2 * low + extra
            assert marker["kind"] == ("batch" if marker["records"] >= low else "on_demand")
            assert all(len(files.page_reviews(name, p)) <= page for p in marker["pages"])
        assert files.read_json("input-complete.json") == {"chunks": len(markers)}


def test_record_ids_are_eleven_alphanumerics_whatever_the_review_id(files: JobFiles) -> None:
    odd = ["a-b-c", "review id with spaces", "ü/ñ:1", "x" * 200]
    cut(files, [review(i, rid) for i, rid in enumerate(odd)], Limits(1, 10, 10**9, 3))
    lines = files.s3.get_object(Bucket="jobs", Key="backfill/bf-t/input/bf-t-00001/p00001.jsonl")["Body"].read()
    assert b'"recordId":"00001000000"' in lines  # page 1, index 0: the 4th review
    for page in (0, 1):
        body = files.s3.get_object(Bucket="jobs", Key=f"backfill/bf-t/input/bf-t-00001/p{page:05d}.jsonl")["Body"]
        for number, line in enumerate(body.read().splitlines()):
            rid = re.search(rb'"recordId":"([^"]*)"', line).group(1).decode()
            assert re.fullmatch(r"[A-Za-z0-9]{11}", rid) and parse_record_id(rid) == (page, number)
    assert parse_record_id("a-b-c") is None and parse_record_id(record_id(7, 12)) == (7, 12)


def test_a_rerun_skips_what_closed_chunks_cover_and_rewrites_the_open_one(files: JobFiles) -> None:
    limits = Limits(2, 4, 10**9, 2)
    first = Cutter(files, "bf-t", limits, lambda r: {"text": r.text})
    for i in range(7):  # chunk 1 closed (r0..r3); chunk 2 open: r4, r5 on a page, r6 in memory; the process dies
        first.add(review(i))
    second = cut(files, [review(i) for i in range(9)], limits)  # the rerun reads the whole input again
    markers = files.markers()
    assert sorted(markers) == ["bf-t-00001", "bf-t-00002", "bf-t-00003"] and second.state.covered == {"archive": 8}
    assert [r.review_id for r in files.page_reviews("bf-t-00002", 0)] == ["r4", "r5"]
    assert markers["bf-t-00003"]["kind"] == "on_demand"  # r8 alone: below the minimum


def test_bytes_bind_before_records(files: JobFiles) -> None:
    cut(files, [review(i) for i in range(30)], Limits(1, 1000, 400, 5))
    markers = files.markers()
    assert len(markers) > 1 and all(m["records"] < 30 for m in markers.values())


def test_job_names_and_tokens_match_bedrocks_patterns() -> None:
    run = run_id_for("s3://archive/reviews.jsonl", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert run == run_id_for("s3://archive/reviews.jsonl", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    name = job_name(run, 12, 2)
    assert name == f"{run}-00012-r2"
    assert re.fullmatch(shape_pattern("ModelInvocationJobName"), name)
    assert re.fullmatch(shape_pattern("ModelInvocationIdempotencyToken"), name)
    assert len(job_name("a" * 40, 99999, 9)) <= 63
