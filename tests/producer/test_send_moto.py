"""The producer against moto: partial failures, failed calls and exhausted retries, then the stream read back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson

from producer.synthetic import synthetic_reviews
from tests.producer.put_faults import INTERNAL_500, PARTIAL, THROTTLE_400, ids
from tests.support.kinesis import read_records

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^sent=(\d+) retried=(\d+) failed=(\d+) skipped=(\d+) rate=([\d.]+) reviews/s elapsed=([\d.]+)s$")


def expected(n: int, seed: int = 42) -> dict[str, dict]:
    return {r.review_id: orjson.loads(r.to_json()) for r in synthetic_reviews(n, seed)}


def assert_exactly_once(client, stream: str, want: dict[str, dict]) -> None:
    got = [record.json() for record in read_records(client, stream)]
    counts = Counter(ids(got))
    assert [k for k, c in counts.items() if c > 1] == []
    assert set(counts) == set(want)
    assert {r["review_id"]: r for r in got} == want  # and byte-for-byte the records we meant to send


def test_partial_failures_retry_only_failed_entries(fault_proxy, stream, kinesis_client, run_producer):
    # 1200 reviews = batches of 500, 500, 200. The first batch's call and its two retries each lose every
    # other entry: 250, then 125, then 63 entries are re-sent before the fourth call lands the rest.
    fault_proxy.script = [PARTIAL, PARTIAL, PARTIAL]
    run = run_producer(fault_proxy.url, "--synthetic", "1200", "--stream", stream)
    assert run.code == 0, run.stdout
    assert run.summary["sent"] == "1200"
    assert run.summary["failed"] == "0"
    assert int(run.summary["retried"]) == fault_proxy.injected == 250 + 125 + 63
    assert fault_proxy.put_calls == 3 + 3
    assert_exactly_once(kinesis_client, stream, expected(1200))


def test_failed_calls_are_retried_whole(fault_proxy, stream, kinesis_client, run_producer):
    fault_proxy.script = [INTERNAL_500, THROTTLE_400, PARTIAL, INTERNAL_500]
    run = run_producer(fault_proxy.url, "--synthetic", "600", "--stream", stream)
    assert run.code == 0, run.stdout
    assert run.summary["sent"] == "600"
    assert run.summary["failed"] == "0"
    # 500 (call failed) + 500 (throttled) + 250 (partial) + 250 (the retry's call failed)
    assert int(run.summary["retried"]) == fault_proxy.injected == 1500
    assert_exactly_once(kinesis_client, stream, expected(600))


def test_record_failing_beyond_max_retries_is_reported(fault_proxy, stream, kinesis_client, run_producer, tmp_path):
    stuck = "synthetic-42-7"
    fault_proxy.always_fail_keys = {stuck}
    failed_file = tmp_path / "failed.tsv"
    run = run_producer(
        fault_proxy.url,
        "--synthetic",
        "50",
        "--stream",
        stream,
        "--max-retries",
        "3",
        "--failed-file",
        str(failed_file),
    )
    assert run.code == 1
    assert (run.summary["sent"], run.summary["failed"], run.summary["retried"]) == ("49", "1", "3")
    review_id, code, message = failed_file.read_text().rstrip("\n").split("\t")
    assert (review_id, code) == (stuck, "ProvisionedThroughputExceededException")
    assert "Rate exceeded" in message
    want = expected(50)
    del want[stuck]
    assert_exactly_once(kinesis_client, stream, want)


def test_missing_stream_aborts_and_reports_every_record(kinesis_server, run_producer, tmp_path):
    failed_file = tmp_path / "failed.tsv"
    run = run_producer(
        kinesis_server.url, "--synthetic", "700", "--stream", "no-such-stream", "--failed-file", str(failed_file)
    )
    assert run.code == 1
    assert (run.summary["sent"], run.summary["failed"], run.summary["retried"]) == ("0", "700", "0")
    codes = Counter(line.split("\t")[1] for line in failed_file.read_text().splitlines())
    assert codes == {"ResourceNotFoundException": 500, "NotAttempted": 200}


def test_script_end_to_end_with_env_endpoint(kinesis_server, stream, kinesis_client):
    """`python producer/main.py` as a subprocess; the endpoint comes only from AWS_ENDPOINT_URL_KINESIS."""
    env = {**os.environ, "AWS_ENDPOINT_URL_KINESIS": kinesis_server.url, "KINESIS_STREAM_NAME": stream}
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.run(
        [sys.executable, "producer/main.py", "--synthetic", "750", "--seed", "3"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    match = SUMMARY.match(lines[0])
    assert match, lines[0]
    assert match.group(1, 2, 3, 4) == ("750", "0", "0", "0")
    assert float(match.group(5)) > 0
    assert_exactly_once(kinesis_client, stream, expected(750, seed=3))


def test_rate_paces_sending(kinesis_server, stream, run_producer):
    run = run_producer(kinesis_server.url, "--synthetic", "120", "--stream", stream, "--rate", "200")
    assert run.code == 0
    # Pacing can only slow the producer down, so only the fast side is checked (a busy machine is slower
    # still): 120 records at 200/s take at least about 0.6 s, never the instant an unpaced run takes.
    assert float(run.summary["elapsed"].rstrip("s")) >= 0.45
    assert float(run.summary["rate"]) <= 260
