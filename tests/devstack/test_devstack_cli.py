"""`python -m devstack up|status|down` as a user runs it, and the in-process LocalStack API."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import orjson
import pytest

from dataflow.enrich.prompt import build_converse_request, parse_answer
from devstack.processes import LOOPBACK, http_ok
from devstack.stack import LocalStack, StackConfig
from devstack.stack_commands import proc_start_time
from tests.devstack.conftest import MODEL_ID

ROOT = Path(__file__).resolve().parents[2]


def devstack(workdir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _parse_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = value
    return out


@pytest.fixture()
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A temp working dir; whatever `up` left running there is stopped afterwards, even on failure."""
    yield tmp_path
    if (tmp_path / ".devstack" / "state.json").exists():
        devstack(tmp_path, "down")


def test_up_status_down(workdir: Path) -> None:
    up = devstack(workdir, "up", "--shards", "2", "--stream", "clicks", "--latency-ms", "5", "--rpm", "1000")
    assert up.returncode == 0, up.stderr
    env = _parse_env(workdir / ".devstack" / "env")
    state = orjson.loads((workdir / ".devstack" / "state.json").read_bytes())
    assert set(state["services"]) == {"kinesis", "opensearch", "bedrock", "live"}
    for svc in state["services"].values():
        assert Path(svc["log"]).parent == workdir / ".devstack" / "logs"
    assert env["OPENSEARCH_AUTH"] == "none" and env["KINESIS_STREAM_NAME"] == "clicks"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_REGION"] == "us-east-1" and env["BEDROCK_MODEL_ID"] == MODEL_ID
    assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == state["services"]["bedrock"]["url"]

    kinesis = boto3.client("kinesis", endpoint_url=env["AWS_ENDPOINT_URL_KINESIS"], region_name="us-east-1")
    summary = kinesis.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == 2
    assert http_ok(env["OPENSEARCH_URL"])
    bedrock = boto3.client(
        "bedrock-runtime", endpoint_url=env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"], region_name="us-east-1"
    )
    answer = bedrock.converse(**build_converse_request(MODEL_ID, ["Lovely shoes, very comfortable."], 100))
    assert parse_answer(answer["output"]["message"]["content"][0]["text"], 1)[1].sentiment == "positive"
    with urllib.request.urlopen(env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] + "/_admin/config") as resp:
        knobs = orjson.loads(resp.read())
    assert knobs["latency_ms"] == 5 and knobs["rpm"] == 1000

    status = devstack(workdir, "status")
    assert status.returncode == 0 and status.stdout.count(" up") == 4, status.stdout
    assert f"live page   {state['services']['live']['url']}/" in up.stdout
    with urllib.request.urlopen(state["services"]["live"]["url"] + "/state.json") as resp:
        assert orjson.loads(resp.read())["indexed"] == 0  # the page answers, reading the stack's OpenSearch

    again = devstack(workdir, "up")
    assert again.returncode == 1 and "already up" in again.stderr and "Traceback" not in again.stderr

    down = devstack(workdir, "down")
    assert down.returncode == 0, down.stderr
    for svc in state["services"].values():
        assert proc_start_time(svc["pid"]) is None, f"{svc} still running after down"
    assert not (workdir / ".devstack" / "state.json").exists()
    assert devstack(workdir, "status").returncode == 3


def test_port_in_use_is_one_clear_error(workdir: Path) -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = devstack(workdir, "up", "--opensearch-port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / ".devstack" / "state.json").exists()


def test_bedrock_server_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.bedrock",
            "--port",
            "0",
            "--backend",
            "llm",
            "--model-path",
            str(tmp_path / "missing.gguf"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and ("missing.gguf" in result.stderr or "xllamacpp" in result.stderr)


def test_local_stack_context_manager() -> None:
    with LocalStack(StackConfig(shards=1, stream="inproc")) as stack:
        env = stack.env()
        pids = [p.pid for p in stack.processes()]
        assert {"AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "OPENSEARCH_URL"} <= set(env)
        assert http_ok(env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] + "/ping")
        kinesis = boto3.client("kinesis", endpoint_url=env["AWS_ENDPOINT_URL_KINESIS"], region_name="us-east-1")
        assert kinesis.describe_stream_summary(StreamName="inproc")["StreamDescriptionSummary"]["OpenShardCount"] == 1
        batch_job_runs_on_the_stack(env)
    assert all(proc_start_time(pid) is None for pid in pids)


def batch_job_runs_on_the_stack(env: dict[str, str]) -> None:
    """Clients configured only by the stack's env reach one S3 and one Bedrock that agree on a batch job."""
    aws = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], **aws)
    bedrock = boto3.client("bedrock", endpoint_url=env["AWS_ENDPOINT_URL_BEDROCK"], **aws)
    s3.create_bucket(Bucket="stack-batch")
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "ok"}],
    }
    s3.put_object(
        Bucket="stack-batch",
        Key="in/a.jsonl",
        Body=b"\n".join(orjson.dumps({"recordId": str(i), "modelInput": body}) for i in range(100)),
    )
    arn = bedrock.create_model_invocation_job(
        jobName="stack-1",
        roleArn="arn:aws:iam::123456789012:role/batch",
        modelId=env["BEDROCK_MODEL_ID"],
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://stack-batch/in/"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://stack-batch/out/"}},
    )["jobArn"]
    for _ in range(300):
        job = bedrock.get_model_invocation_job(jobIdentifier=arn)
        if job["status"] not in ("Submitted", "Validating", "Scheduled", "InProgress"):
            break
        time.sleep(0.1)
    assert job["status"] == "Completed", job.get("message")
    manifest = s3.get_object(Bucket="stack-batch", Key=f"out/{arn.rsplit('/', 1)[1]}/manifest.json.out")["Body"]
    assert orjson.loads(manifest.read())["successRecordCount"] == 100


def test_crashed_child_during_up_stops_the_others(workdir: Path) -> None:
    result = devstack(workdir, "up", "--backend", "llm", "--model-path", str(workdir / "missing.gguf"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bedrock (llm) exited" in result.stderr and ("missing.gguf" in result.stderr or "xllamacpp" in result.stderr)
    assert not (workdir / ".devstack" / "state.json").exists()
    bad_knob = devstack(workdir, "up", "--throttle-rate", "2")
    assert bad_knob.returncode == 1 and "throttle_rate" in bad_knob.stderr
