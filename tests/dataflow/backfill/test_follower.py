"""The job side against botocore's Stubber (the Bedrock control plane, validated against its service model) and
moto's S3: a finished job's answers come back one page at a time while later jobs wait, a restart resumes from
the pages already emitted and follows the job it submitted instead of creating it again, an answer whose
recordId maps to nothing is a dead letter, and unanswered records are handed on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import orjson
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from dataflow.backfill.chunks import Cutter, Limits
from dataflow.backfill.files import JobFiles, page_file, record_id
from dataflow.backfill.planner import Clients, Follower, Progress
from dataflow.backfill.requests import Outcome
from dataflow.records import DeadLetter, EnrichedReview, Review
from dataflow.settings import BackfillSettings, Settings

RUN = "bf-test"
ROLE = "arn:aws:iam::123456789012:role/batch"
ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{}"
SETTINGS = Settings()
BACKFILL = BackfillSettings(
    job_url="s3://jobs/backfill", role_arn=ROLE, archive="x.jsonl", min_records=3, max_records=6,
    on_demand_below=3, poll_interval_s=0.05, max_concurrent_jobs=1, page_records=2,
)  # fmt: skip
GOOD = '"results": [{"id": "1", "summary": "Fine.", "sentiment": "positive"}]}'


@pytest.fixture()
def files() -> Iterator[JobFiles]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="jobs")
        yield JobFiles(client, BACKFILL.job_url, RUN)


def reviews(n: int) -> list[Review]:
    return [Review(f"id-{i}", "u", "2024-01-01T00:00:00.000Z", f"text {i}", "archive", str(i), 9) for i in range(n)]


def summary(name: str, status: str = "InProgress") -> dict:
    return {
        "jobArn": ARN.format(name), "jobName": name, "modelId": SETTINGS.bedrock_model_id, "roleArn": ROLE,
        "submitTime": datetime(2026, 1, 1, tzinfo=UTC), "status": status,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://jobs/in/"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://jobs/out/"}},
    }  # fmt: skip


def answer(rid: str, error: bool = False) -> bytes:
    line: dict = {"recordId": rid, "modelInput": {}}
    if error:
        line["error"] = {"errorCode": 400, "errorMessage": "Malformed input request"}
    else:
        line["modelOutput"] = {
            "content": [{"type": "text", "text": GOOD}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 100, "output_tokens": 10},
        }  # fmt: skip
    return orjson.dumps(line)


def write_output(files: JobFiles, job: str, page: int, lines: list[bytes]) -> None:
    """What Bedrock writes for one input file, under a job-id folder, in its own order."""
    key = f"{files.output_prefix(job)}jobid/{page_file(page)}.out"
    files.s3.put_object(Bucket=files.bucket, Key=key, Body=b"\n".join(reversed(lines)))


def follower(files: JobFiles, stub: Stubber, on_demand: list[Review], progress: Progress | None = None) -> Follower:
    def send(pairs) -> Iterator[Outcome]:
        for review, attempts in pairs:
            on_demand.append(review)
            yield Outcome(DeadLetter.for_review(review, "enrich", "ThrottlingException", "gave up", attempts), 0, 0)

    return Follower(SETTINGS, BACKFILL, RUN, Clients(stub.client, files, send), progress or Progress())


def expect_list(stub: Stubber, *jobs: dict) -> None:
    stub.add_response("list_model_invocation_jobs", {"invocationJobSummaries": list(jobs)},
                      {"nameContains": RUN, "maxResults": 1000})  # fmt: skip


def expect_create(stub: Stubber, name: str) -> None:
    stub.add_response(
        "create_model_invocation_job",
        {"jobArn": ARN.format(name)},
        {"jobName": name, "clientRequestToken": name, "roleArn": ROLE, "modelId": SETTINGS.bedrock_model_id,
         "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://jobs/backfill/{RUN}/input/{name}/",
                                                   "s3InputFormat": "JSONL"}},
         "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://jobs/backfill/{RUN}/output/{name}/"}},
         "timeoutDurationInHours": 24, "tags": ANY},
    )  # fmt: skip


def expect_get(stub: Stubber, name: str, status: str, processed: int, total: int) -> None:
    resp = {**summary(name, status), "processedRecordCount": processed, "totalRecordCount": total}
    stub.add_response("get_model_invocation_job", resp, {"jobIdentifier": ARN.format(name)})


def ids(items: list) -> list[str]:
    return sorted(i.review.review_id if isinstance(i, EnrichedReview) else i.doc_id for i in items)


def test_pages_come_back_as_a_job_ends_and_a_restart_resumes_after_the_emitted_ones(files: JobFiles) -> None:
    bedrock = boto3.client("bedrock", region_name="us-east-1")
    limits = Limits(BACKFILL.min_records, BACKFILL.max_records, BACKFILL.max_file_bytes, BACKFILL.page_records)
    cutter = Cutter(files, RUN, limits, lambda r: {"text": r.text})
    for review in reviews(9):  # job 1: id-0..id-5 on pages 0, 1, 2; job 2: id-6..id-8
        cutter.add(review)
    cutter.finish()
    job1, job2 = f"{RUN}-00001", f"{RUN}-00002"
    write_output(files, job1, 0, [answer(record_id(0, 0)), answer(record_id(0, 1))])
    write_output(files, job1, 1, [answer(record_id(1, 0), error=True), answer(record_id(1, 1)), answer("id-3")])
    write_output(files, job1, 2, [answer(record_id(2, 0))])  # id-5 never answered
    on_demand: list[Review] = []
    with Stubber(bedrock) as stub:
        expect_list(stub)
        first = follower(files, stub, on_demand)
        expect_create(stub, job1)  # a quota of one job: job 2 waits
        expect_get(stub, job1, "InProgress", 2, 6)
        first.poll()
        assert first.readable() is None and not first.complete()
        expect_get(stub, job1, "PartiallyCompleted", 5, 6)
        first.poll()
        assert ids(first.read_page(first.readable())) == ["id-0", "id-1"]  # job 2 not even submitted yet
        stub.assert_no_pending_responses()
    saved = Progress.from_json(orjson.loads(orjson.dumps(first.progress.to_json())))
    # The process dies here; the rerun finds job 1 by name and reads on from page 1.
    with Stubber(bedrock) as stub:
        expect_list(stub, summary(job1, "PartiallyCompleted"), summary(job2, "Submitted"))
        second = follower(files, stub, on_demand, saved)
        expect_get(stub, job2, "InProgress", 0, 3)
        second.poll()
        page1 = second.read_page(second.readable())
        assert ids(page1) == sorted(["id-2", "id-3", f"{job1}-id-3"])
        unknown = next(i for i in page1 if isinstance(i, DeadLetter) and i.error_type == "batch:unknown_record_id")
        assert "id-3" in unknown.error and next(i for i in page1 if ids([i]) == ["id-2"]).error_type == "batch:400"
        assert ids(second.read_page(second.readable())) == ["id-4"]
        marker = files.markers()[f"{job1}-r1"]  # one unanswered: below the threshold, on demand
        assert marker["kind"] == "on_demand" and marker["records"] == 1
        expect_get(stub, job2, "InProgress", 1, 3)
        second.poll()
        assert ids(second.read_page(second.readable())) == ["id-5"] and [r.review_id for r in on_demand] == ["id-5"]
        assert second.readable() is None and not second.complete()  # job 2 still runs
        stub.assert_no_pending_responses()
    assert second.report.jobs_submitted == 1 and second.report.unknown_records == 1  # totals carried over
    assert second.report.enriched == 4 and second.report.dead_letters == 3  # id-2, id-5, the unknown answer
