"""Backfill benchmark: 5,000 realistic reviews from a JSONL archive through Bedrock batch jobs on the local stack.

Every number comes from outside the backfill: documents and dead letters in OpenSearch, the jobs the local
Bedrock server lists, and the run's report.json in S3 (tokens and cost). The local server compresses a job's
life (1 s Submitted, 1 s Validating, 2 s Scheduled, then the lexicon backend answers each record), so the wall
time is this machine's, not Bedrock's: on AWS a job runs within its 24-hour window, usually minutes to hours.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import orjson

from benchmarks.harness import HTTP, Bench, spawn_flow
from producer.synthetic import synthetic_reviews

BAD = [b"{not json", orjson.dumps({"review_id": "bench-bad-1", "user_id": "u", "date_time": 1})]


def aws(service: str, env: dict[str, str]) -> Any:
    """A boto3 client of the local stack with the run's fake credentials (this process may have none)."""
    return boto3.client(
        service,
        endpoint_url=env[f"AWS_ENDPOINT_URL_{service.upper()}"],
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def backfill(bench: Bench, count: int = 5000, record_error_rate: float = 0.01) -> dict[str, Any]:
    bench.knobs()
    assert bench.stack.bedrock is not None
    knobs = {"record_error_rate": record_error_rate, "seed": 29}
    assert HTTP.request("POST", f"{bench.stack.bedrock.url}/_admin/batch", body=orjson.dumps(knobs)).status == 200
    reviews = list(synthetic_reviews(count, 29, "realistic"))
    archive = bench.log_dir / f"backfill-{uuid.uuid4().hex[:6]}.jsonl"
    archive.write_bytes(b"\n".join([r.to_json() for r in reviews] + BAD) + b"\n")
    with bench.run() as run:
        bucket = f"bench-jobs-{uuid.uuid4().hex[:8]}"
        s3 = aws("s3", run.env)
        s3.create_bucket(Bucket=bucket)
        run_id = f"bench-{uuid.uuid4().hex[:6]}"
        env = {
            **run.env,
            "BACKFILL_ARCHIVE": str(archive),
            "BACKFILL_JOB_URL": f"s3://{bucket}/backfill",
            "BACKFILL_ROLE_ARN": "arn:aws:iam::123456789012:role/reviewstream-batch",
            "BACKFILL_RUN_ID": run_id,
            "BACKFILL_MAX_RECORDS": "1000",  # five jobs, two at a time: the quota paths are exercised
            "BACKFILL_MAX_CONCURRENT_JOBS": "2",
            "BACKFILL_POLL_INTERVAL_S": "0.5",
        }
        started = time.monotonic()
        with open(bench.log_dir / f"{run_id}.log", "wb") as log:
            proc = spawn_flow(["dataflow.backfill"], env, log)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS and CPU
        wall = time.monotonic() - started
        assert os.waitstatus_to_exitcode(status) == 0, f"backfill failed: see {bench.log_dir / f'{run_id}.log'}"
        docs = {d["review_id"] for d in run.documents()}
        client = run.opensearch
        client.indices.refresh(index=env["OPENSEARCH_DLQ_INDEX"])
        hits = client.search(index=env["OPENSEARCH_DLQ_INDEX"], body={"size": 10000})["hits"]["hits"]
        letters = {h["_id"]: h["_source"]["error_type"] for h in hits}
        ids = {r.review_id for r in reviews}
        bedrock = aws("bedrock", env)
        jobs = [j["jobName"] for j in bedrock.list_model_invocation_jobs(maxResults=1000)["invocationJobSummaries"]]
        jobs = [name for name in jobs if name.startswith(run_id)]
        report = orjson.loads(s3.get_object(Bucket=bucket, Key=f"backfill/{run_id}/report.json")["Body"].read())
        waiting = cpu_while_waiting(bench, env, archive)
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        **waiting,
        "reviews": count,
        "bad_records": len(BAD),
        "wall_s": wall,
        "reviews_per_s": count / wall,
        "indexed": len(docs),
        "dead_lettered": len(letters),
        "record_errors": Counter(letters.values()).get("batch:500", 0),
        "missing": len(ids - docs - set(letters)),
        "both": len(docs & set(letters)),
        "jobs": len(jobs),
        "jobs_distinct": len(set(jobs)),
        "input_tokens": report["batch_input_tokens"],
        "output_tokens": report["batch_output_tokens"],
        "batch_cost_usd": report["batch_cost_usd"],
        "on_demand_cost_usd_same_tokens": report["batch_tokens_on_demand_cost_usd"],
        "on_demand_records": report["on_demand_records"],
    }


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def cpu_while_waiting(bench: Bench, env: dict[str, str], archive: Path) -> dict[str, Any]:
    """CPU of the backfill process while its only job runs (InProgress, slowed by `record_ms`): the idle cost."""
    knobs = {"record_error_rate": 0, "record_ms": 2000, "parallel": 4}
    assert HTTP.request("POST", f"{bench.stack.bedrock.url}/_admin/batch", body=orjson.dumps(knobs)).status == 200
    small = archive.with_name(archive.stem + "-wait.jsonl")
    small.write_bytes(b"\n".join(archive.read_bytes().splitlines()[:200]) + b"\n")
    run_id = f"wait-{uuid.uuid4().hex[:6]}"
    env = {**env, "BACKFILL_ARCHIVE": str(small), "BACKFILL_RUN_ID": run_id, "BACKFILL_POLL_INTERVAL_S": "5"}
    bedrock = aws("bedrock", env)

    def status() -> str | None:
        jobs = bedrock.list_model_invocation_jobs(nameContains=run_id)["invocationJobSummaries"]
        return jobs[0]["status"] if jobs else None

    with open(bench.log_dir / f"{run_id}.log", "wb") as log:
        proc = spawn_flow(["dataflow.backfill"], env, log)
        try:
            while status() != "InProgress":
                time.sleep(0.2)
            time.sleep(2)  # past the first poll after the job started
            ticks, started = cpu_ticks(proc.pid), time.monotonic()
            time.sleep(60)
            assert status() == "InProgress", "the job ended before the window: raise record_ms"
            busy = (cpu_ticks(proc.pid) - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - started)
        finally:
            proc.kill()
            proc.wait()
    return {"wait_window_s": 60, "wait_cpu_pct": 100 * busy, "wait_poll_interval_s": 5}


def section(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    r = result
    return [
        "## Backfill",
        "",
        f"`python -m benchmarks --only backfill`: {r['reviews']:,.0f} realistic synthetic reviews (plus "
        f"{r['bad_records']:.0f} bad records) from a JSONL archive through `python -m bytewax.run dataflow.backfill` "
        "on the local stack: jobs of at most 1,000 records, two at a time, 1% of records answered with an "
        "injected error. The local server compresses a job's life to seconds; on AWS a job takes minutes to hours "
        "within its 24-hour window, so the wall time says nothing about Bedrock's.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| wall time (s) | {r['wall_s']:.1f} |",
        f"| indexed / dead-lettered | {r['indexed']:,.0f} / {r['dead_lettered']:,.0f} |",
        f"| of which injected record errors (`batch:500`) | {r['record_errors']:,.0f} |",
        f"| reviews neither indexed nor dead-lettered / both | {r['missing']:.0f} / {r['both']:.0f} |",
        f"| jobs submitted (distinct names) | {r['jobs']:.0f} ({r['jobs_distinct']:.0f}) |",
        f"| tokens in / out | {r['input_tokens']:,.0f} / {r['output_tokens']:,.0f} |",
        f"| cost at batch price (USD) | {r['batch_cost_usd']:.4f} |",
        f"| the same tokens on demand (USD) | {r['on_demand_cost_usd_same_tokens']:.4f} |",
        f"| records sent on demand instead | {r['on_demand_records']:.0f} |",
        f"| peak RSS of the backfill process (MB) | {r['peak_rss_mb']:.0f} |",
        f"| CPU of the backfill process, whole run (s) | {r['cpu_s']:.1f} |",
        f"| CPU while one job runs, {r['wait_window_s']:.0f} s window, poll every {r['wait_poll_interval_s']:.0f} s "
        f"(% of a core) | {r['wait_cpu_pct']:.2f} |",
        "",
    ]
