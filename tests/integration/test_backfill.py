"""The backfill end to end on the local stack (moto S3, the local Bedrock batch control plane, OpenSearch):
every review of an archive indexed or dead-lettered exactly once, injected record errors dead-lettered, a kill
mid-job and a restart submitting no job twice, the report's cost half the on-demand cost of the same tokens, and
a backfill over the stream beside the live flow on the same index losing and duplicating nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import orjson
import pytest
import urllib3

from producer.synthetic import synthetic_reviews
from tests.plugins.stack import ROOT, Pipeline

pytestmark = pytest.mark.integration
BAD = [b"{not json", orjson.dumps({"review_id": "bad-1", "user_id": "u", "date_time": 1}), orjson.dumps([1, 2])]


def batch_knobs(pipeline: Pipeline, **knobs: object) -> None:
    assert pipeline.stack.bedrock is not None
    url = f"{pipeline.stack.bedrock.url}/_admin/batch"
    resp = urllib3.PoolManager().request("POST", url, body=orjson.dumps(knobs))
    assert resp.status == 200, resp.data


def backfill_env(pipeline: Pipeline, **extra: str) -> dict[str, str]:
    bucket = f"jobs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=pipeline.env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return {
        **pipeline.env,
        "BACKFILL_JOB_URL": f"s3://{bucket}/backfill",
        "BACKFILL_ROLE_ARN": "arn:aws:iam::123456789012:role/reviewstream-batch",
        "BACKFILL_POLL_INTERVAL_S": "0.3",
        "BACKFILL_MAX_RECORDS": "200",
        "BACKFILL_MAX_CONCURRENT_JOBS": "2",
        **extra,
    }


def write_archive(path: Path, count: int, seed: int = 29) -> list[str]:
    reviews = list(synthetic_reviews(count, seed, "realistic"))
    path.write_bytes(b"\n".join([r.to_json() for r in reviews] + BAD) + b"\n")
    return [r.review_id for r in reviews]


def run_backfill(env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "bytewax.run", "dataflow.backfill"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stderr


def start_backfill(env: dict[str, str], log: Path) -> subprocess.Popen:
    """The backfill in its own process group (a test can kill it whole), its output in `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "dataflow.backfill"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def jobs_of(env: dict[str, str]) -> list[dict]:
    bedrock = boto3.client("bedrock", endpoint_url=env["AWS_ENDPOINT_URL_BEDROCK"], region_name="us-east-1")
    return bedrock.list_model_invocation_jobs(maxResults=1000)["invocationJobSummaries"]


def report_of(env: dict[str, str]) -> dict:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1")
    bucket, _, prefix = env["BACKFILL_JOB_URL"].removeprefix("s3://").partition("/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    key = next(k for k in keys if k.endswith("/report.json"))
    return orjson.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def assert_exactly_once(pipeline: Pipeline, expected: list[str]) -> tuple[set[str], dict[str, str]]:
    indexed = pipeline.ids()
    client = pipeline.opensearch
    dlq = pipeline.env["OPENSEARCH_DLQ_INDEX"]
    client.indices.refresh(index=dlq)
    hits = client.search(index=dlq, body={"query": {"match_all": {}}, "size": 10000})["hits"]["hits"]
    letters = {h["_id"]: h["_source"]["error_type"] for h in hits}
    assert len(indexed) == len(set(indexed))
    assert not set(indexed) & set(letters), "a review both indexed and dead-lettered"
    assert set(expected) <= set(indexed) | set(letters), "a review neither indexed nor dead-lettered"
    return set(indexed), letters


def test_an_archive_goes_through_batch_jobs_exactly_once_at_half_the_price(pipeline: Pipeline, tmp_path) -> None:
    batch_knobs(pipeline, submitted_s=0.2, validating_s=0.2, scheduled_s=0.2, record_error_rate=0.03, seed=5)
    ids = write_archive(tmp_path / "reviews.jsonl", 450)
    env = backfill_env(pipeline, BACKFILL_ARCHIVE=str(tmp_path / "reviews.jsonl"), BACKFILL_RUN_ID="archive-1")
    log = run_backfill(env)
    indexed, letters = assert_exactly_once(pipeline, ids)
    assert set(ids) == indexed | {k for k in letters if k in set(ids)}
    errors = Counter(letters.values())
    assert errors["batch:500"] > 0, errors  # the injected record errors, with Bedrock's code
    assert {"invalid_json", "missing_text", "not_object"} <= set(errors), errors  # the live parse's dead letters
    names = [j["jobName"] for j in jobs_of(env) if j["jobName"].startswith("archive-1-")]
    assert len(names) == len(set(names)) and len(names) == 2, names  # 450 records: 200 + 200 a job, 50 on demand
    report = report_of(env)
    assert report["on_demand_records"] == 50 and report["unknown_records"] == 0
    assert report["enriched"] == len(indexed) and report["dead_letters"] == len(letters) - len(BAD)
    assert report["batch_cost_usd"] == pytest.approx(report["batch_tokens_on_demand_cost_usd"] / 2, rel=1e-6)
    assert report["batch_input_tokens"] > 0 and "backfill.progress" in log


def test_a_kill_mid_job_and_a_restart_submit_no_job_twice(pipeline: Pipeline, tmp_path) -> None:
    batch_knobs(pipeline, submitted_s=0.5, validating_s=0.5, scheduled_s=0.5, record_ms=20, record_error_rate=0)
    ids = write_archive(tmp_path / "reviews.jsonl", 420, seed=31)
    env = backfill_env(pipeline, BACKFILL_ARCHIVE=str(tmp_path / "reviews.jsonl"), BACKFILL_RUN_ID="kill-1")
    first = start_backfill(env, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 120
        while not any(j["status"] == "InProgress" for j in jobs_of(env) if j["jobName"].startswith("kill-1-")):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-2000:]
            time.sleep(0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = {j["jobName"] for j in jobs_of(env) if j["jobName"].startswith("kill-1-")}
    log = run_backfill(env)
    names = [j["jobName"] for j in jobs_of(env) if j["jobName"].startswith("kill-1-")]
    assert len(names) == len(set(names)), Counter(names)
    assert before <= set(names) and "backfill.resumed" in log
    indexed, letters = assert_exactly_once(pipeline, ids)
    assert set(ids) <= indexed | set(letters)


def test_a_stream_backfill_beside_the_live_flow_loses_and_duplicates_nothing(pipeline: Pipeline, tmp_path) -> None:
    batch_knobs(pipeline, submitted_s=0.2, validating_s=0.2, scheduled_s=0.2, record_error_rate=0)
    start = datetime.now(UTC) - timedelta(seconds=5)
    pipeline.produce(300, seed=41)
    ids = [r.review_id for r in synthetic_reviews(300, 41, pipeline.lengths)]
    env = backfill_env(pipeline, BACKFILL_FROM=start.isoformat(), BACKFILL_RUN_ID="beside-1")
    live = pipeline.start_flow(log=tmp_path / "live.log")
    try:
        run_backfill(env)
        pipeline.wait_for(lambda: live.poll() is not None, timeout=120, what="the live flow to drain the stream")
    finally:
        if live.poll() is None:
            os.killpg(live.pid, signal.SIGKILL)
        live.wait()
    indexed, letters = assert_exactly_once(pipeline, ids)
    assert indexed | set(letters) == set(ids)
    assert pipeline.count() == len(indexed)
    assert report_of(env)["enriched"] == 300  # the backfill answered every record of the range too


def test_results_of_a_finished_job_are_indexed_while_a_later_job_still_runs(pipeline: Pipeline, tmp_path) -> None:
    batch_knobs(pipeline, submitted_s=0.2, validating_s=0.2, scheduled_s=0.2, record_ms=120, record_error_rate=0)
    ids = write_archive(tmp_path / "reviews.jsonl", 600, seed=37)
    env = backfill_env(pipeline, BACKFILL_ARCHIVE=str(tmp_path / "reviews.jsonl"), BACKFILL_RUN_ID="stream-1",
                       BACKFILL_MAX_CONCURRENT_JOBS="1", BACKFILL_PAGE_RECORDS="50")  # fmt: skip
    proc = start_backfill(env, tmp_path / "run.log")
    try:
        pipeline.wait_for(lambda: pipeline.count() > 0, timeout=180, what="the first job's results")
        last = {j["jobName"]: j["status"] for j in jobs_of(env)}.get("stream-1-00003")
        assert last not in {"Completed", "PartiallyCompleted"}, last  # the last job is not done: results streamed
        assert proc.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    indexed, letters = assert_exactly_once(pipeline, ids)
    assert set(ids) <= indexed | set(letters)
