"""Batch-inference jobs as Bedrock describes them: statuses, the job record, its wire shape, and the job table.

The table lives in the server process (jobs survive as long as it does). Wire shapes follow botocore's `bedrock`
service model (GetModelInvocationJobResponse, ModelInvocationJobSummary); timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs agree across the local stack
REGION = "us-east-1"
JOB_ARN_PREFIX = f"arn:aws:bedrock:{REGION}:{ACCOUNT_ID}:model-invocation-job/"


class JobStatus(StrEnum):
    SUBMITTED = "Submitted"
    VALIDATING = "Validating"
    SCHEDULED = "Scheduled"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    PARTIALLY_COMPLETED = "PartiallyCompleted"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    EXPIRED = "Expired"


ACTIVE = frozenset({JobStatus.SUBMITTED, JobStatus.VALIDATING, JobStatus.SCHEDULED, JobStatus.IN_PROGRESS})
"""Statuses that count against the concurrent-jobs quota and that StopModelInvocationJob accepts."""
TERMINAL = frozenset(
    {JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.EXPIRED}
)


def now() -> datetime:
    """UTC now in whole milliseconds, the wire's precision, so filters compare what clients saw."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


_last_submit: list[datetime] = []


def submit_now() -> datetime:
    """`now()`, but after every earlier submission: two jobs created within one millisecond would otherwise tie,
    so a listing by submit time (or filtered on one job's submitTime) would order them at random."""
    t = now()
    if _last_submit and t <= _last_submit[-1]:
        t = _last_submit[-1] + timedelta(milliseconds=1)
    _last_submit[:] = [t]
    return t


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def new_job_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


@dataclass
class Job:
    """One model-invocation job; `request` is the CreateModelInvocationJob body as sent (idempotency compares it)."""

    job_id: str
    request: dict
    base_model: str = ""  # the foundation model behind modelId (profile or ARN): the quota counts per base model
    submit_time: datetime = field(default_factory=submit_now)
    status: JobStatus = JobStatus.SUBMITTED
    message: str | None = None
    last_modified: datetime | None = None
    end_time: datetime | None = None
    expiration: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    total: int | None = None
    processed: int = 0
    success: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    @property
    def arn(self) -> str:
        return JOB_ARN_PREFIX + self.job_id

    @property
    def name(self) -> str:
        return str(self.request["jobName"])

    @property
    def model_id(self) -> str:
        return str(self.request["modelId"])

    @property
    def invocation_type(self) -> str:
        return str(self.request.get("modelInvocationType") or "InvokeModel")

    def set_status(self, status: JobStatus, message: str | None = None) -> None:
        self.status = status
        if message is not None:
            self.message = message
        self.last_modified = now()
        if status in TERMINAL:
            self.end_time = self.last_modified

    def to_wire(self) -> dict:
        """GetModelInvocationJob's response body (ListModelInvocationJobs' summaries have the same members)."""
        r = self.request
        out: dict = {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "clientRequestToken": r.get("clientRequestToken"),
            "roleArn": r["roleArn"],
            "status": str(self.status),
            "message": self.message,
            "submitTime": iso(self.submit_time),
            "lastModifiedTime": iso(self.last_modified or self.submit_time),
            "endTime": iso(self.end_time),
            "inputDataConfig": r["inputDataConfig"],
            "outputDataConfig": r["outputDataConfig"],
            "vpcConfig": r.get("vpcConfig"),
            "timeoutDurationInHours": r.get("timeoutDurationInHours", 24),
            "jobExpirationTime": iso(self.expiration),
            "modelInvocationType": self.invocation_type,
        }
        if self.total is not None:
            out |= {
                "totalRecordCount": self.total,
                "processedRecordCount": self.processed,
                "successRecordCount": self.success,
                "errorRecordCount": self.errors,
            }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class JobTable:
    """All jobs of this server, by id, with the client tokens seen (CreateModelInvocationJob's idempotency)."""

    jobs: dict[str, Job] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # clientRequestToken -> job id

    def find(self, identifier: str) -> Job | None:
        return self.jobs.get(identifier.removeprefix(JOB_ARN_PREFIX))

    def by_name(self, name: str) -> Job | None:
        return next((job for job in self.jobs.values() if job.name == name), None)

    def active_for_model(self, base_model: str) -> int:
        return sum(1 for job in self.jobs.values() if job.base_model == base_model and job.status in ACTIVE)

    def listing(
        self,
        *,
        status: str | None,
        name_contains: str | None,
        after: datetime | None,
        before: datetime | None,
        descending: bool,
    ) -> list[Job]:
        jobs = [
            job
            for job in self.jobs.values()
            if (status is None or job.status == status)
            and (name_contains is None or name_contains in job.name)
            and (after is None or job.submit_time > after)
            and (before is None or job.submit_time < before)
        ]
        jobs.sort(key=lambda job: (job.submit_time, job.job_id), reverse=descending)
        return jobs


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def page_offset(token: str) -> int:
    """The offset a nextToken encodes; ValueError for a token this server never issued."""
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "offset":
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"Invalid pagination token: {token}") from err
