"""Bedrock's batch control plane for one run: submit a job once, find the run's jobs, follow their progress.

Through boto3's `bedrock` client (`AWS_ENDPOINT_URL_BEDROCK` points it at the local server). A job is created
with jobName = clientRequestToken = its deterministic name (dataflow/backfill/chunks.py) and tagged with the run
id; before creating, and when a create is refused as a conflict, the run's jobs are listed by name, so a
restart never submits a job twice and picks up the jobs still running.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from dataflow.backfill.files import JobFiles
from dataflow.settings import BackfillSettings

log = logging.getLogger(__name__)
RUN_TAG = "reviewstream-backfill-run"


class Status(StrEnum):
    SUBMITTED = "Submitted"
    VALIDATING = "Validating"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "InProgress"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    PARTIALLY_COMPLETED = "PartiallyCompleted"
    FAILED = "Failed"
    STOPPED = "Stopped"
    EXPIRED = "Expired"


TERMINAL = frozenset({Status.COMPLETED, Status.PARTIALLY_COMPLETED, Status.FAILED, Status.STOPPED, Status.EXPIRED})
# Refusals that mean "not now": the job is created later, under the same name and token.
RETRY_LATER = frozenset({"ServiceQuotaExceededException", "ThrottlingException", "ServiceUnavailableException"})


class JobHalt(RuntimeError):
    """A refusal no retry fixes (role, bucket, model): the message names the setting to fix."""


@dataclass
class Tracked:
    """One job of the run as this process follows it."""

    name: str
    records: int
    resubmit: int = 0
    number: int = 0
    arn: str | None = None
    status: Status | None = None
    processed: int = 0
    first_seen: float = field(default_factory=time.monotonic)
    pages: list[int] = field(default_factory=list)  # its input pages (files.py)
    on_demand: bool = False  # too few for batch: its pages go through Converse, never to Bedrock batch
    read: int = 0  # pages whose outcomes were emitted
    unanswered: int = 0  # records of those pages the job never answered (staged for `<name>-r<k+1>`)
    done: bool = False  # every page read and the unanswered handed on
    outputs: dict[str, str] | None = None  # output object keys by file name, listed once the job ended

    @property
    def active(self) -> bool:
        return self.arn is not None and self.status not in TERMINAL

    @property
    def readable(self) -> bool:
        """Pages can be read now: the job ended (or needs no job), and not all are read yet."""
        return not self.done and (self.on_demand or self.status in TERMINAL)

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the rate seen so far; None before the first record is done."""
        if self.processed <= 0:
            return None
        rate = self.processed / max(1e-3, now - self.first_seen)
        return max(0.0, (self.records - self.processed) / rate)


def list_run_jobs(bedrock: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's existing jobs by name (ListModelInvocationJobs, nameContains = run id, every page)."""
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"nameContains": run_id, "maxResults": 1000}
    while True:
        page = bedrock.list_model_invocation_jobs(**kwargs)
        for summary in page.get("invocationJobSummaries", []):
            if summary["jobName"].startswith(run_id + "-"):
                found[summary["jobName"]] = summary
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def submit(bedrock: Any, job: Tracked, files: JobFiles, settings: BackfillSettings, model_id: str, run_id: str) -> bool:
    """Create the job (idempotent by name and token); False when Bedrock says not now (quota, throttling)."""
    try:
        resp = bedrock.create_model_invocation_job(
            jobName=job.name,
            clientRequestToken=job.name,
            roleArn=settings.role_arn,
            modelId=model_id,
            inputDataConfig={
                "s3InputDataConfig": {"s3Uri": files.uri(files.input_prefix(job.name)), "s3InputFormat": "JSONL"}
            },
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": files.uri(files.output_prefix(job.name))}},
            timeoutDurationInHours=settings.timeout_hours,
            tags=[{"key": RUN_TAG, "value": run_id}],
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in RETRY_LATER:
            log.info("backfill.submit_later job=%s reason=%s", job.name, code)
            return False
        # A name already used: Conflict (older servers) or Validation "currently in use" (Bedrock's job wording).
        in_use = code == "ConflictException" or (code == "ValidationException" and "in use" in str(err))
        existing = list_run_jobs(bedrock, run_id).get(job.name) if in_use else None
        if existing is None:
            message = err.response.get("Error", {}).get("Message", str(err))
            raise JobHalt(
                f"CreateModelInvocationJob refused {job.name}: {code}: {message} "
                "(check BACKFILL_ROLE_ARN, BACKFILL_JOB_URL and BEDROCK_MODEL_ID)"
            ) from err
        resp = existing
    job.arn, job.status = resp["jobArn"], Status.SUBMITTED
    log.info("backfill.submitted job=%s records=%d arn=%s", job.name, job.records, job.arn)
    return True


def refresh(bedrock: Any, job: Tracked) -> None:
    """GetModelInvocationJob: the job's status and records processed so far."""
    resp = bedrock.get_model_invocation_job(jobIdentifier=job.arn)
    job.status = Status(resp["status"])
    job.processed = int(resp.get("processedRecordCount") or 0)
    if resp.get("totalRecordCount"):
        job.records = int(resp["totalRecordCount"])
    if job.status in (Status.FAILED, Status.STOPPED, Status.EXPIRED):
        log.warning("backfill.job_ended job=%s status=%s message=%s", job.name, job.status, resp.get("message", ""))
