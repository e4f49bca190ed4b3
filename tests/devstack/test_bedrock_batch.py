"""Batch inference on the local Bedrock server, through the real boto3 `bedrock` and `s3` clients.

One moto server (S3) and one Bedrock server per module; every test gets its own bucket and fast batch knobs.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.bedrock.batch.knobs import BatchKnobs
from devstack.processes import ManagedProcess, start_bedrock, start_kinesis
from tests.devstack.conftest import MODEL_ID, admin

ROLE = "arn:aws:iam::123456789012:role/reviewstream-batch"
TERMINAL = {"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"}
FAST = {"submitted_s": 0.15, "validating_s": 0.15, "scheduled_s": 0.15, "stopping_s": 0.1, "hour_s": 60.0, "seed": 11}
AWS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_buckets = itertools.count()


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    s3 = start_kinesis(strict=False)
    try:
        bedrock = start_bedrock(extra_args=["--s3-endpoint", s3.url, "--seed", "7"])
    except BaseException:
        s3.stop()
        raise
    yield s3, bedrock
    bedrock.stop()
    s3.stop()


class Batch:
    """The clients of one test, its bucket, and helpers to write input and read output."""

    def __init__(self, s3_url: str, bedrock_url: str) -> None:
        self.url = bedrock_url
        self.s3 = boto3.client("s3", endpoint_url=s3_url, **AWS)
        self.bedrock = boto3.client("bedrock", endpoint_url=bedrock_url, **AWS)
        # As SDKs that check nothing client side send it (botocore checks ranges, not patterns).
        unchecked = Config(parameter_validation=False)
        self.unchecked = boto3.client("bedrock", endpoint_url=bedrock_url, config=unchecked, **AWS)
        self.bucket = f"batch-{next(_buckets)}-{int(time.time() * 1000) % 10**8}"
        self.s3.create_bucket(Bucket=self.bucket)

    def knobs(self, **changes: object) -> None:
        admin(self.url, "/_admin/batch", changes)

    def put_records(self, key: str, ids: list[str], *, converse: bool = False, broken: set[str] = frozenset()) -> None:
        lines = []
        for ident in ids:
            text = f'<review id="{ident}">Review {ident}: the battery lasts for days and I love it.</review>'
            if converse:
                body: dict = {
                    "system": [{"text": "Summarise."}],
                    "messages": [{"role": "user", "content": [{"text": text}]}],
                    "inferenceConfig": {"maxTokens": 200},
                }
            else:
                body = {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 200,
                    "system": "Summarise.",
                    "messages": [{"role": "user", "content": text}],
                }
            if ident in broken:
                body.pop("max_tokens", None)
            lines.append(orjson.dumps({"recordId": ident, "modelInput": body}))
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"\n".join(lines) + b"\n")

    def create(self, name: str, *, input_key: str = "in/", unchecked: bool = False, **extra: Any) -> str:
        request = {
            "jobName": name,
            "roleArn": ROLE,
            "modelId": MODEL_ID,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{self.bucket}/{input_key}"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{self.bucket}/out/"}},
            **extra,
        }
        client = self.unchecked if unchecked else self.bedrock
        return client.create_model_invocation_job(**request)["jobArn"]

    def follow(self, arn: str, timeout: float = 30.0) -> tuple[list[str], dict]:
        """Poll until the job ends: (the statuses seen in order, the last description)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.bedrock.get_model_invocation_job(jobIdentifier=arn)
            if not seen or seen[-1] != job["status"]:
                seen.append(job["status"])
            if job["status"] in TERMINAL:
                return seen, job
            time.sleep(0.02)
        raise AssertionError(f"job {arn} still {seen[-1]} after {timeout} s")

    def outputs(self, arn: str) -> dict[str, bytes]:
        prefix = f"out/{arn.rsplit('/', 1)[1]}/"
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        return {
            o["Key"][len(prefix) :]: self.s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
            for o in listing
        }

    def stop_all(self) -> None:
        """Stop every unfinished job and wait for it to end, so no job outlives its test."""
        for page in self.bedrock.get_paginator("list_model_invocation_jobs").paginate():
            for job in page["invocationJobSummaries"]:
                if job["status"] not in TERMINAL:
                    with contextlib.suppress(self.bedrock.exceptions.ValidationException):
                        self.bedrock.stop_model_invocation_job(jobIdentifier=job["jobArn"])
                    self.follow(job["jobArn"])


@pytest.fixture()
def batch(servers: tuple[ManagedProcess, ManagedProcess]) -> Iterator[Batch]:
    s3, bedrock = servers
    admin(bedrock.url, "/_admin/batch", {**BatchKnobs().to_dict(), **FAST})
    client = Batch(s3.url, bedrock.url)
    yield client
    client.stop_all()


def ids(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def lines(raw: bytes) -> list[dict]:
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


# ---------------------------------------------------------------------------------------------- a job's life


def test_a_job_passes_every_status_and_writes_bedrocks_layout(batch: Batch) -> None:
    batch.put_records("in/part-1.jsonl", ids(80, "a"))
    batch.put_records("in/nested/part-2.jsonl", ids(60, "b"))
    batch.s3.put_object(Bucket=batch.bucket, Key="in/notes.txt", Body=b"not an input file")
    # InProgress lasts ~1.4 s (140 records, 20 ms each, 2 at a time): on the lexicon backend alone it can pass
    # between two polls of a loaded machine, and the test then never sees it (seen once in CI).
    batch.knobs(record_ms=20.0, parallel=2)
    arn = batch.create("layout-1")

    seen, job = batch.follow(arn)

    assert seen == ["Submitted", "Validating", "Scheduled", "InProgress", "Completed"]
    assert (job["totalRecordCount"], job["processedRecordCount"]) == (140, 140)
    assert (job["successRecordCount"], job["errorRecordCount"]) == (140, 0)
    assert job["endTime"] >= job["submitTime"] and job["jobExpirationTime"] > job["submitTime"]
    out = batch.outputs(arn)
    assert set(out) == {"part-1.jsonl.out", "nested/part-2.jsonl.out", "manifest.json.out"}
    first, second = lines(out["part-1.jsonl.out"]), lines(out["nested/part-2.jsonl.out"])
    assert sorted(r["recordId"] for r in first) == ids(80, "a")
    assert sorted(r["recordId"] for r in second) == ids(60, "b")
    record = first[0]
    assert record["modelInput"]["anthropic_version"] == "bedrock-2023-05-31"
    output = record["modelOutput"]
    assert (output["type"], output["role"], output["content"][0]["type"]) == ("message", "assistant", "text")
    answer = orjson.loads(output["content"][0]["text"])
    assert answer["results"][0]["id"] == record["recordId"]
    assert output["stop_reason"] == "end_turn" and output["usage"]["output_tokens"] > 0
    manifest = orjson.loads(out["manifest.json.out"])
    tokens_in = sum(r["modelOutput"]["usage"]["input_tokens"] for r in first + second)
    tokens_out = sum(r["modelOutput"]["usage"]["output_tokens"] for r in first + second)
    assert manifest == {
        "totalRecordCount": 140,
        "processedRecordCount": 140,
        "successRecordCount": 140,
        "errorRecordCount": 0,
        "inputTokenCount": tokens_in,
        "outputTokenCount": tokens_out,
    }


def test_output_order_is_shuffled_and_a_single_file_uri_is_read_alone(batch: Batch) -> None:
    batch.put_records("in/one.jsonl", ids(200))
    batch.put_records("in/other.jsonl", ids(100, "x"))
    batch.knobs(parallel=1)  # one record at a time: any disorder comes from the shuffle
    arn = batch.create("shuffle-1", input_key="in/one.jsonl")

    _, job = batch.follow(arn)

    assert job["status"] == "Completed" and job["totalRecordCount"] == 200
    out = batch.outputs(arn)
    assert set(out) == {"one.jsonl.out", "manifest.json.out"}
    order = [r["recordId"] for r in lines(out["one.jsonl.out"])]
    assert sorted(order) == ids(200) and order != ids(200)


def test_converse_jobs_take_and_answer_converse_bodies(batch: Batch) -> None:
    batch.put_records("in/c.jsonl", ids(100), converse=True)
    arn = batch.create("converse-1", modelInvocationType="Converse")

    _, job = batch.follow(arn)

    assert job["status"] == "Completed" and job["modelInvocationType"] == "Converse"
    record = lines(batch.outputs(arn)["c.jsonl.out"])[0]
    output = record["modelOutput"]
    assert output["output"]["message"]["role"] == "assistant"
    assert orjson.loads(output["output"]["message"]["content"][0]["text"])["results"][0]["id"] == record["recordId"]
    assert output["usage"]["totalTokens"] == output["usage"]["inputTokens"] + output["usage"]["outputTokens"]


def test_bad_records_and_injected_errors_carry_error_and_the_job_completes(batch: Batch) -> None:
    broken = {"r00003", "r00042"}
    batch.put_records("in/e.jsonl", ids(150), broken=broken)
    batch.knobs(record_error_rate=0.2)
    arn = batch.create("errors-1")

    _, job = batch.follow(arn)

    records = lines(batch.outputs(arn)["e.jsonl.out"])
    failed = [r for r in records if "error" in r]
    assert job["status"] == "Completed"
    assert all("modelOutput" not in r for r in failed) and all("modelOutput" in r for r in records if "error" not in r)
    by_id = {r["recordId"]: r for r in failed}
    for ident in broken:
        assert by_id[ident]["error"]["errorCode"] == 400
        assert "max_tokens" in by_id[ident]["error"]["errorMessage"]
    injected = [r for r in failed if r["recordId"] not in broken]
    assert 10 <= len(injected) <= 50  # 20% of 148
    assert {r["error"]["errorCode"] for r in injected} == {500}
    assert job["errorRecordCount"] == len(failed) and job["successRecordCount"] == 150 - len(failed)
    manifest = orjson.loads(batch.outputs(arn)["manifest.json.out"])
    assert manifest["errorRecordCount"] == len(failed) and manifest["processedRecordCount"] == 150


def test_progress_is_visible_while_in_progress(batch: Batch) -> None:
    batch.put_records("in/p.jsonl", ids(120))
    batch.knobs(record_ms=20.0, parallel=2)
    arn = batch.create("progress-1")
    counts = []
    while True:
        job = batch.bedrock.get_model_invocation_job(jobIdentifier=arn)
        if job["status"] == "InProgress":
            counts.append(job["processedRecordCount"])
        if job["status"] in TERMINAL:
            break
        time.sleep(0.1)
    assert job["status"] == "Completed"
    assert len(set(counts)) >= 3 and counts == sorted(counts) and min(counts) < 120


def test_validation_failures_end_the_job_failed_with_a_message(batch: Batch) -> None:
    batch.put_records("few/a.jsonl", ids(99))
    batch.s3.put_object(Bucket=batch.bucket, Key="bad/a.jsonl", Body=b'{"recordId": "1", "modelInput": {}}\nnot json\n')
    batch.s3.put_object(Bucket=batch.bucket, Key="none/readme.txt", Body=b"no jsonl here")
    batch.put_records("big/a.jsonl", ids(120))
    cases = {
        "few/": "fewer than the minimum of 100 records",
        "bad/": "Line 2 of bad/a.jsonl is not valid JSON",
        "none/": "No .jsonl files",
        "missing/": "No .jsonl files",
        "none/readme.txt": "must have the .jsonl extension",
    }
    arns = {prefix: batch.create(f"invalid-{i}", input_key=prefix) for i, prefix in enumerate(cases)}
    for prefix, expected in cases.items():
        seen, job = batch.follow(arns[prefix])
        assert seen[-1] == "Failed" and "InProgress" not in seen, prefix
        assert expected in job["message"], (prefix, job["message"])
        assert batch.outputs(arns[prefix]) == {}
    batch.knobs(max_records_per_file=100)
    _, job = batch.follow(batch.create("invalid-big", input_key="big/"))
    assert job["status"] == "Failed" and "more than the maximum of 100 records per file" in job["message"]


def test_an_unreadable_bucket_fails_the_job(batch: Batch) -> None:
    request = {"input_key": "in/", "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://no-such-bucket-x/out/"}}}
    batch.put_records("in/a.jsonl", ids(100))
    _, job = batch.follow(batch.create("nobucket-1", **request))
    assert job["status"] == "Failed" and "no-such-bucket-x" in job["message"]


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("roleArn", "arn:aws:iam::12345:role/x", "roleArn"),
        ("roleArn", "not-an-arn", "roleArn"),
        ("jobName", "bad name!", "jobName"),
        ("timeoutDurationInHours", 12, "timeoutDurationInHours"),
        ("timeoutDurationInHours", 200, "timeoutDurationInHours"),
        (
            "inputDataConfig",
            {"s3InputDataConfig": {"s3Uri": "s3://Upper/in/"}},
            "inputDataConfig.s3InputDataConfig.s3Uri",
        ),
        (
            "outputDataConfig",
            {"s3OutputDataConfig": {"s3Uri": "https://b/out"}},
            "outputDataConfig.s3OutputDataConfig.s3Uri",
        ),
    ],
)
def test_create_refuses_what_bedrock_refuses(batch: Batch, field: str, value: object, where: str) -> None:
    with pytest.raises(ClientError) as err:
        batch.create(f"refused-{field}", unchecked=True, **{field: value})
    assert error_code(err) == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert f"at '{where}' failed to satisfy constraint" in err.value.response["Error"]["Message"]
    assert batch.bedrock.list_model_invocation_jobs(nameContains=f"refused-{field}")["invocationJobSummaries"] == []


def test_create_refuses_an_unknown_model_and_a_used_name(batch: Batch) -> None:
    with pytest.raises(batch.bedrock.exceptions.ResourceNotFoundException):
        batch.create("model-1", modelId="anthropic.claude-nonexistent-v1:0")
    batch.put_records("in/a.jsonl", ids(100))
    batch.create("taken-1")
    with pytest.raises(batch.bedrock.exceptions.ValidationException, match="job name is currently in use"):
        batch.create("taken-1")


def test_a_client_token_makes_create_idempotent(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    first = batch.create("idem-1", clientRequestToken="backfill-run-1-job-0")
    again = batch.create("idem-1", clientRequestToken="backfill-run-1-job-0")
    assert again == first
    assert len(batch.bedrock.list_model_invocation_jobs(nameContains="idem-1")["invocationJobSummaries"]) == 1
    assert batch.bedrock.get_model_invocation_job(jobIdentifier=first)["clientRequestToken"] == "backfill-run-1-job-0"
    # Bedrock "ignores the request, but does not return an error" for a token it has seen, whatever the body.
    assert batch.create("idem-2", clientRequestToken="backfill-run-1-job-0") == first
    assert batch.bedrock.list_model_invocation_jobs(nameContains="idem-2")["invocationJobSummaries"] == []


def test_the_concurrent_jobs_quota_counts_unfinished_jobs_per_model(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    batch.knobs(max_jobs=2, hold_scheduled=True)
    held = [batch.create(f"quota-{i}") for i in range(2)]
    with pytest.raises(ClientError) as err:
        batch.create("quota-2")
    assert error_code(err) == "ServiceQuotaExceededException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(batch.bedrock.exceptions.ServiceQuotaExceededException):  # the same model by its bare id
        batch.create("quota-2", modelId=MODEL_ID.removeprefix("us."))
    batch.create("quota-other", modelId="amazon.nova-lite-v1:0")  # another model has its own quota
    batch.bedrock.stop_model_invocation_job(jobIdentifier=held[0])
    assert batch.follow(held[0])[1]["status"] == "Stopped"
    batch.create("quota-3")  # a stopped job no longer counts
    for arn in (
        held[1],
        *[
            j["jobArn"]
            for j in batch.bedrock.list_model_invocation_jobs(nameContains="quota-3")["invocationJobSummaries"]
        ],
    ):
        batch.bedrock.stop_model_invocation_job(jobIdentifier=arn)


# ---------------------------------------------------------------------------------------------- stop, time-out, faults


def test_stop_while_in_progress_writes_what_was_done(batch: Batch) -> None:
    batch.put_records("in/s.jsonl", ids(200))
    batch.knobs(record_ms=30.0, parallel=2, stopping_s=0.3)
    arn = batch.create("stop-1")
    while batch.bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] != "InProgress":
        time.sleep(0.02)
    time.sleep(0.3)
    batch.bedrock.stop_model_invocation_job(jobIdentifier=arn)

    seen, job = batch.follow(arn)

    assert seen[:2] == ["Stopping", "Stopped"] or seen == ["Stopped"]
    assert job["status"] == "Stopped" and 0 < job["processedRecordCount"] < 200
    out = batch.outputs(arn)
    written = lines(out["s.jsonl.out"])
    assert len(written) == job["processedRecordCount"]
    assert orjson.loads(out["manifest.json.out"])["processedRecordCount"] == len(written)
    with pytest.raises(batch.bedrock.exceptions.ValidationException):
        batch.bedrock.stop_model_invocation_job(jobIdentifier=arn)


def test_stop_before_the_job_starts_writes_nothing(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    batch.knobs(hold_scheduled=True)
    arn = batch.create("stop-early-1")
    batch.bedrock.stop_model_invocation_job(jobIdentifier=arn)
    seen, job = batch.follow(arn)
    assert job["status"] == "Stopped" and "InProgress" not in seen
    assert batch.outputs(arn) == {}


def test_a_job_that_never_starts_before_its_timeout_expires(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    batch.knobs(hold_scheduled=True, hour_s=0.05)  # 24 hours last 1.2 s
    arn = batch.create("expire-1", timeoutDurationInHours=24)
    seen, job = batch.follow(arn)
    assert seen[-2:] == ["Scheduled", "Expired"] and batch.outputs(arn) == {}
    assert job["endTime"] >= job["jobExpirationTime"]
    assert job["jobExpirationTime"] - job["submitTime"] == pytest.approx(
        timedelta(seconds=1.2), abs=timedelta(seconds=0.01)
    )


def test_a_job_that_runs_out_of_time_is_partially_completed(batch: Batch) -> None:
    batch.put_records("in/t.jsonl", ids(300))
    batch.knobs(hour_s=0.05, record_ms=20.0, parallel=2)  # 1.2 s in all; 300 records need 3 s
    arn = batch.create("timeout-1", timeoutDurationInHours=24)

    seen, job = batch.follow(arn)

    assert seen[-2:] == ["InProgress", "PartiallyCompleted"]
    assert 0 < job["processedRecordCount"] < 300 and job["totalRecordCount"] == 300
    out = batch.outputs(arn)
    written = {r["recordId"] for r in lines(out["t.jsonl.out"])}
    assert len(written) == job["processedRecordCount"] and written < set(ids(300))
    assert orjson.loads(out["manifest.json.out"])["processedRecordCount"] == len(written)


def test_the_fail_fault_fails_a_job_half_way(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    batch.knobs(fail_rate=1.0, fail_message="Injected failure.", record_ms=10.0, parallel=2)
    seen, job = batch.follow(batch.create("fail-1"))
    assert seen[-2:] == ["InProgress", "Failed"] and job["message"] == "Injected failure."
    assert 0 < job["processedRecordCount"] < 100


# ---------------------------------------------------------------------------------------------- get, list, tags


def test_get_and_stop_need_a_job_that_exists(batch: Batch) -> None:
    with pytest.raises(batch.bedrock.exceptions.ResourceNotFoundException):
        batch.bedrock.get_model_invocation_job(jobIdentifier="abcdefghijkl")
    with pytest.raises(batch.bedrock.exceptions.ResourceNotFoundException):
        batch.bedrock.stop_model_invocation_job(jobIdentifier="abcdefghijkl")
    with pytest.raises(batch.bedrock.exceptions.ValidationException):
        batch.bedrock.get_model_invocation_job(jobIdentifier="Not-A-Job-Id")


def test_list_filters_sorts_and_pages(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    before = datetime.now(UTC) - timedelta(seconds=1)
    arns = [batch.create(f"listing-{i}") for i in range(5)]
    for arn in arns:
        batch.follow(arn)
    bedrock = batch.bedrock

    pages = list(
        bedrock.get_paginator("list_model_invocation_jobs").paginate(
            nameContains="listing-", PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(p["invocationJobSummaries"]) for p in pages] == [2, 2, 1]
    newest_first = [j["jobArn"] for p in pages for j in p["invocationJobSummaries"]]
    assert newest_first == arns[::-1]
    ascending = bedrock.list_model_invocation_jobs(
        nameContains="listing-", sortBy="CreationTime", sortOrder="Ascending"
    )
    assert [j["jobArn"] for j in ascending["invocationJobSummaries"]] == arns
    summary = ascending["invocationJobSummaries"][0]
    assert summary["status"] == "Completed" and summary["totalRecordCount"] == 100 and summary["roleArn"] == ROLE
    assert (
        bedrock.list_model_invocation_jobs(nameContains="listing-", statusEquals="Failed")["invocationJobSummaries"]
        == []
    )
    third = bedrock.get_model_invocation_job(jobIdentifier=arns[2])["submitTime"]
    after = bedrock.list_model_invocation_jobs(
        nameContains="listing-", submitTimeAfter=third, submitTimeBefore=datetime.now(UTC)
    )
    assert {j["jobArn"] for j in after["invocationJobSummaries"]} == set(arns[3:])
    assert (
        bedrock.list_model_invocation_jobs(nameContains="listing-", submitTimeBefore=before)["invocationJobSummaries"]
        == []
    )
    with pytest.raises(bedrock.exceptions.ValidationException):
        bedrock.list_model_invocation_jobs(nextToken="forged")


def test_jobs_carry_tags(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(100))
    arn = batch.create("tags-1", tags=[{"key": "reviewstream:run", "value": "backfill-7"}])
    bedrock = batch.bedrock
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [
        {"key": "reviewstream:run", "value": "backfill-7"}
    ]
    bedrock.tag_resource(resourceARN=arn, tags=[{"key": "part", "value": "3"}])
    bedrock.untag_resource(resourceARN=arn, tagKeys=["reviewstream:run"])
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [{"key": "part", "value": "3"}]
    with pytest.raises(ClientError) as err:
        bedrock.tag_resource(resourceARN=arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(200)])
    assert error_code(err) == "TooManyTagsException"
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.list_tags_for_resource(resourceARN=arn[:-12] + "zzzzzzzzzzzz")


def test_batch_knobs_refuse_unknown_names_and_bad_values(batch: Batch) -> None:
    import urllib.error

    for bad in ({"no_such_knob": 1}, {"record_error_rate": 2}, {"parallel": 0}):
        with pytest.raises(urllib.error.HTTPError) as err:
            batch.knobs(**bad)
        assert err.value.code == 400


def test_a_failed_job_stops_answering_records(batch: Batch) -> None:
    batch.put_records("in/a.jsonl", ids(400))
    batch.knobs(fail_rate=1.0, record_ms=5.0, parallel=8)
    arn = batch.create("fail-2")
    _, job = batch.follow(arn)
    time.sleep(0.3)
    later = batch.bedrock.get_model_invocation_job(jobIdentifier=arn)
    assert job["status"] == later["status"] == "Failed"
    assert later["processedRecordCount"] == job["processedRecordCount"] < 400


def test_missing_record_ids_are_added_and_malformed_answers_injected(batch: Batch) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "x"}],
    }
    raw = b"\n".join(orjson.dumps({"modelInput": body}) for _ in range(100))
    batch.s3.put_object(Bucket=batch.bucket, Key="in/a.jsonl", Body=raw)
    batch.put_records("in/b.jsonl", ids(200))
    batch.knobs(record_malformed_rate=0.5)
    arn = batch.create("ids-1")
    _, job = batch.follow(arn)
    assert job["status"] == "Completed"
    out = batch.outputs(arn)
    added = [r["recordId"] for r in lines(out["a.jsonl.out"])]
    assert len(set(added)) == 100 and all(len(i) == 11 and i.isalnum() for i in added)

    def contract_kept(record: dict) -> bool:
        try:
            answer = orjson.loads(record["modelOutput"]["content"][0]["text"])
        except orjson.JSONDecodeError:
            return False
        return isinstance(answer, dict) and answer.get("results", [{}])[0].get("id") == record["recordId"]

    kept = sum(contract_kept(r) for r in lines(out["b.jsonl.out"]))
    assert 60 <= kept <= 140  # about half of 200 broken, each a 200 answer with modelOutput


# ---------------------------------------------------------------------------------------------- wiring


def test_a_server_without_s3_fails_jobs_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    server = start_bedrock(extra_args=["--batch-submitted-s", "0", "--batch-validating-s", "0"])
    try:
        bedrock = boto3.client("bedrock", endpoint_url=server.url, **AWS)
        arn = bedrock.create_model_invocation_job(
            jobName="no-s3",
            roleArn=ROLE,
            modelId=MODEL_ID,
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://bkt/in/"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bkt/out/"}},
        )["jobArn"]
        deadline = time.monotonic() + 10
        while (job := bedrock.get_model_invocation_job(jobIdentifier=arn))["status"] not in TERMINAL:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert job["status"] == "Failed" and "--s3-endpoint" in job["message"]
    finally:
        server.stop()


def test_the_stack_points_clients_and_the_server_at_motos_s3() -> None:
    from devstack.stack import StackConfig, stack_env

    env = stack_env("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", StackConfig())
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:1"
    assert env["AWS_ENDPOINT_URL_BEDROCK"] == env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == "http://127.0.0.1:3"


def test_the_server_keeps_answering_while_a_job_runs_on_a_backend_that_never_waits(batch: Batch) -> None:
    batch.put_records("in/big.jsonl", ids(1500))  # lexicon: pure CPU per record, no await inside
    arn = batch.create("busy-1")
    midway = []
    while (job := batch.bedrock.get_model_invocation_job(jobIdentifier=arn))["status"] not in TERMINAL:
        if job["status"] == "InProgress" and 0 < job["processedRecordCount"] < 1500:
            midway.append(job["processedRecordCount"])
        time.sleep(0.01)
    assert job["status"] == "Completed"
    assert len(midway) >= 2, "GetModelInvocationJob was not answered while the records were processed"


def test_aiobotocore_sees_the_same_jobs(batch: Batch) -> None:
    import asyncio

    from aiobotocore.session import get_session

    batch.put_records("in/a.jsonl", ids(100))
    arn = batch.create("aio-1", tags=[{"key": "run", "value": "r1"}])

    async def scenario() -> tuple[dict, dict, dict]:
        async with get_session().create_client("bedrock", endpoint_url=batch.url, **AWS) as client:
            listed = await client.list_model_invocation_jobs(nameContains="aio-1")
            tags = await client.list_tags_for_resource(resourceARN=arn)
            while (job := await client.get_model_invocation_job(jobIdentifier=arn))["status"] not in TERMINAL:
                await asyncio.sleep(0.02)
            return listed, tags, job

    listed, tags, job = asyncio.run(scenario())
    assert [j["jobArn"] for j in listed["invocationJobSummaries"]] == [arn]
    assert tags["tags"] == [{"key": "run", "value": "r1"}]
    assert job["status"] == "Completed" and isinstance(job["submitTime"], datetime)


def test_converse_records_with_tools_fail_alone(batch: Batch) -> None:
    batch.put_records("in/c.jsonl", ids(100), converse=True)
    tool = {
        "recordId": "tool-1",
        "modelInput": {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "toolConfig": {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}}]},
        },
    }
    batch.s3.put_object(Bucket=batch.bucket, Key="in/tools.jsonl", Body=orjson.dumps(tool))
    arn = batch.create("tools-1", modelInvocationType="Converse")
    _, job = batch.follow(arn)
    assert job["status"] == "Completed" and (job["successRecordCount"], job["errorRecordCount"]) == (100, 1)
    [record] = lines(batch.outputs(arn)["tools.jsonl.out"])
    assert record["error"]["errorCode"] == 400 and "toolConfig" in record["error"]["errorMessage"]
