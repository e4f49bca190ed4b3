"""Chunking within the per-job quotas, and job names Bedrock accepts (its own pattern, from botocore's model)."""

from __future__ import annotations

import re

import botocore.session
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.backfill.chunks import Chunker, job_name, run_id_for
from dataflow.records import Review


def review(i: int) -> Review:
    return Review(f"r{i}", "u", "2024-01-01T00:00:00.000Z", "text", "archive", str(i), 0)


def shape_pattern(name: str) -> str:
    model = botocore.session.get_session().get_service_model("bedrock")
    return model.shape_for(name).metadata["pattern"]


@settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 700), low=st.integers(1, 40), extra=st.integers(0, 120))
def test_every_record_lands_in_exactly_one_chunk_or_the_remainder(total: int, low: int, extra: int) -> None:
    high = 2 * low + extra
    chunker = Chunker(low, high, 10**9)
    chunks = [c for i in range(total) for c in chunker.add(review(i), b"x")]
    tail, rest = chunker.finish()
    chunks += tail
    ids = [r.review_id for c in chunks for r, _ in c.records] + [r.review_id for r, _ in rest.records]
    assert ids == [f"r{i}" for i in range(total)]
    assert all(low <= len(c) <= high for c in chunks)
    # Only a backlog smaller than the minimum is left for on-demand.
    assert len(rest) == (total if total < low else 0)


def test_bytes_bind_before_records() -> None:
    chunker = Chunker(1, 1000, 100)
    cut = [c for i in range(30) for c in chunker.add(review(i), b"y" * 9)]
    assert cut and all(c.size <= 100 for c in cut)


def test_job_names_and_tokens_match_bedrocks_patterns() -> None:
    run = run_id_for("s3://archive/reviews.jsonl", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert run == run_id_for("s3://archive/reviews.jsonl", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    name = job_name(run, 12, 2)
    assert name == f"{run}-00012-r2"
    assert re.fullmatch(shape_pattern("ModelInvocationJobName"), name)
    assert re.fullmatch(shape_pattern("ModelInvocationIdempotencyToken"), name)
    assert len(job_name("a" * 40, 99999, 9)) <= 63
