"""The planner against botocore's Stubber (the Bedrock control plane, validated against its service model) and
moto's S3: jobs created once under deterministic names, a restart that finds them instead of creating them
again, answers and record errors read back, unanswered records re-submitted or sent on demand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import orjson
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from dataflow.backfill.files import JobFiles
from dataflow.backfill.planner import Backfill, Clients
from dataflow.backfill.requests import Outcome
from dataflow.records import DeadLetter, EnrichedReview, Review
from dataflow.settings import BackfillSettings, Settings

RUN = "bf-test"
ROLE = "arn:aws:iam::123456789012:role/batch"
ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{}"
SETTINGS = Settings()
BACKFILL = BackfillSettings(
    job_url="s3://jobs/backfill", role_arn=ROLE, archive="x.jsonl", min_records=3, max_records=6,
    on_demand_below=3, poll_interval_s=0.05, max_concurrent_jobs=1,
)  # fmt: skip
GOOD = '"results": [{"id": "1", "summary": "Fine.", "sentiment": "positive"}]}'


@pytest.fixture()
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="jobs")
        yield client


def reviews(n: int) -> list[Review]:
    return [Review(f"r{i}", "u", "2024-01-01T00:00:00.000Z", f"text {i}", "archive", str(i), 9) for i in range(n)]


def summary(name: str, status: str = "InProgress") -> dict:
    return {
        "jobArn": ARN.format(name), "jobName": name, "modelId": SETTINGS.bedrock_model_id, "roleArn": ROLE,
        "submitTime": datetime(2026, 1, 1, tzinfo=UTC), "status": status,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://jobs/in/"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://jobs/out/"}},
    }  # fmt: skip


def finish_job(files: JobFiles, name: str, errors: frozenset[str] = frozenset(), skip: frozenset[str] = frozenset()):
    """What Bedrock writes when a job ends: one output line per record (an error for some), the manifest."""
    lines = []
    for review in files.reviews(name):
        if review.review_id in skip:
            continue
        line: dict = {"recordId": review.review_id, "modelInput": {}}
        if review.review_id in errors:
            line["error"] = {"errorCode": 400, "errorMessage": "Malformed input request"}
        else:
            line["modelOutput"] = {
                "content": [{"type": "text", "text": GOOD}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 100, "output_tokens": 10},
            }  # fmt: skip
        lines.append(orjson.dumps(line))
    key = files.output_prefix(name) + "jobid/records.jsonl.out"
    files.s3.put_object(Bucket=files.bucket, Key=key, Body=b"\n".join(lines))
    files.s3.put_object(Bucket=files.bucket, Key=files.output_prefix(name) + "jobid/manifest.json.out", Body=b"{}")


def planner(s3: object, stub: Stubber, on_demand: list[Review]) -> Backfill:
    def answer(pairs) -> Iterator[Outcome]:
        for review, attempts in pairs:
            on_demand.append(review)
            yield Outcome(DeadLetter.for_review(review, "enrich", "ThrottlingException", "gave up", attempts), 0, 0)

    files = JobFiles(s3, BACKFILL.job_url, RUN)
    return Backfill(SETTINGS, BACKFILL, RUN, Clients(stub.client, files, answer))


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


def test_a_restart_follows_the_jobs_it_submitted_and_never_creates_them_twice(s3) -> None:
    bedrock = boto3.client("bedrock", region_name="us-east-1")
    files = JobFiles(s3, BACKFILL.job_url, RUN)
    outputs = {f"{RUN}-00001": {"errors": frozenset({"r2"}), "skip": frozenset({"r4"})}}

    def run_job(params: dict, **_: object) -> None:  # the job "runs" as it is created: its output is written
        options = outputs.get(params["jobName"], {})
        finish_job(files, params["jobName"], **options)

    bedrock.meta.events.register("before-parameter-build.bedrock.CreateModelInvocationJob", run_job)
    on_demand: list[Review] = []
    with Stubber(bedrock) as stub:
        expect_list(stub)
        first = planner(s3, stub, on_demand)
        expect_create(stub, f"{RUN}-00001")  # 9 reviews: a chunk of 6 is cut once 3 more wait
        expect_get(stub, f"{RUN}-00001", "InProgress", 2, 6)
        assert first.add(reviews(9)) == []
        stub.assert_no_pending_responses()
    # The process dies here. The rerun reads the same input: job 1 is found by name, not created again.
    with Stubber(bedrock) as stub:
        expect_list(stub, summary(f"{RUN}-00001"))
        second = planner(s3, stub, on_demand)
        expect_get(stub, f"{RUN}-00001", "InProgress", 4, 6)
        assert second.add(reviews(9)) == []  # r0..r5 are in job 1 already: only r6..r8 wait
        expect_get(stub, f"{RUN}-00001", "PartiallyCompleted", 6, 6)
        expect_create(stub, f"{RUN}-00002")  # the tail r6..r8, once job 1 left room in the quota of one
        expect_get(stub, f"{RUN}-00002", "Completed", 3, 3)
        out = list(second.finish())
        stub.assert_no_pending_responses()
    by_id = {item.review_id if isinstance(item, DeadLetter) else item.review.review_id: item for item in out}
    assert sorted(by_id) == [f"r{i}" for i in range(9)] and len(out) == 9
    assert isinstance(by_id["r2"], DeadLetter) and by_id["r2"].error_type == "batch:400"
    assert [r.review_id for r in on_demand] == ["r4"]  # one unanswered record: below the threshold, on demand
    assert all(isinstance(by_id[f"r{i}"], EnrichedReview) for i in (0, 1, 3, 5, 6, 7, 8))
    report = second.report.summary()
    assert report["jobs_submitted"] == 1 and report["enriched"] == 7
    assert report["batch_cost_usd"] == pytest.approx(report["batch_tokens_on_demand_cost_usd"] / 2)
    assert files.read_json("report.json")["dead_letters"] == 2


def test_unanswered_records_at_the_minimum_go_to_a_new_job_named_after_the_first(s3) -> None:
    bedrock = boto3.client("bedrock", region_name="us-east-1")
    files = JobFiles(s3, BACKFILL.job_url, RUN)
    skipped = frozenset({"r0", "r1", "r2"})
    bedrock.meta.events.register(
        "before-parameter-build.bedrock.CreateModelInvocationJob",
        lambda params, **_: finish_job(
            files, params["jobName"], skip=skipped if params["jobName"] == f"{RUN}-00001" else frozenset()
        ),
    )
    with Stubber(bedrock) as stub:
        expect_list(stub)
        backfill = planner(s3, stub, [])
        assert backfill.add(reviews(5)) == []
        expect_create(stub, f"{RUN}-00001")
        expect_get(stub, f"{RUN}-00001", "Expired", 2, 5)
        expect_create(stub, f"{RUN}-00001-r1")  # the 3 records the expired job never answered
        expect_get(stub, f"{RUN}-00001-r1", "Completed", 3, 3)
        out = list(backfill.finish())
        stub.assert_no_pending_responses()
    assert sorted(item.review.review_id for item in out if isinstance(item, EnrichedReview)) == [
        f"r{i}" for i in range(5)
    ]
    assert backfill.report.jobs_resubmitted == 1
