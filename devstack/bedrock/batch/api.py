"""The control-plane routes of batch inference, at botocore's `bedrock` REST paths, and the batch admin API.

CreateModelInvocationJob (POST /model-invocation-job), GetModelInvocationJob (GET /model-invocation-job/{id}),
ListModelInvocationJobs (GET /model-invocation-jobs), StopModelInvocationJob (POST /model-invocation-job/{id}/stop),
TagResource / UntagResource / ListTagsForResource for job ARNs; `GET|POST /_admin/batch` reads or changes the
knobs. Create checks, in order: credentials (`auth_error`), the model's constraints (validate.py), the client
token (a token seen before answers that job, as Bedrock documents: "ignores the request, but does not return an
error"), a job name already used (400 ValidationException "The provided job name is currently in use.", Bedrock's
answer for CreateModelImportJob; not confirmed for batch jobs), the model (404 if unknown), the concurrent-jobs
quota (400 ServiceQuotaExceededException). The input itself is checked later, while the job is Validating (runner.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote

import orjson
from aiohttp import web

from devstack.bedrock.batch.jobs import ACTIVE, Job, JobStatus, JobTable, new_job_id, page_offset, page_token
from devstack.bedrock.batch.knobs import BatchKnobs
from devstack.bedrock.batch.runner import Runtime, run_job
from devstack.bedrock.batch.storage import Storage
from devstack.bedrock.batch.validate import validate
from devstack.bedrock.errors import BedrockError
from devstack.bedrock.models import FOUNDATION_MODELS, PROFILE_PREFIXES, ModelSpec
from devstack.bedrock.wire import error_response, json_body

log = logging.getLogger(__name__)

MAX_TAGS = 200


@dataclass
class BatchState:
    knobs: BatchKnobs = field(default_factory=BatchKnobs)
    s3_endpoint: str | None = None
    table: JobTable = field(default_factory=JobTable)
    runtime: Runtime | None = None  # built on first use, when the server state (backend, faults) is known


BATCH_KEY: web.AppKey[BatchState] = web.AppKey("batch", BatchState)


def batch_model(model_id: str, extra_ids: tuple[str, ...]) -> ModelSpec:
    """The model a job names: a foundation-model id, an inference profile, or the ARN of either; 404 otherwise."""
    ident = model_id.rsplit("/", 1)[-1] if model_id.startswith("arn:") else model_id
    if ident in extra_ids:
        return ModelSpec(ident, on_demand=True)
    base = next((ident[len(p) :] for p in PROFILE_PREFIXES if ident.startswith(p)), ident)
    spec = FOUNDATION_MODELS.get(base)
    if spec is None:
        raise BedrockError("ResourceNotFoundException", f"The provided model identifier {model_id} is invalid.")
    return spec


def _json(doc: object, status: int = 200) -> web.Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json", headers=headers)


Handler = Callable[[web.Request], Awaitable[web.Response]]


def add_batch_routes(app: web.Application, state_key: web.AppKey, knobs: BatchKnobs, s3_endpoint: str | None) -> None:
    """Register the batch routes (before any catch-all route) with a fresh job table."""
    app[BATCH_KEY] = BatchState(knobs=knobs, s3_endpoint=s3_endpoint)

    def guarded(handler: Callable[[web.Request, BatchState], Awaitable[web.Response]]) -> Handler:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                auth_error = request.app[state_key].knobs.auth_error
                if auth_error:
                    raise BedrockError(auth_error)
                return await handler(request, request.app[BATCH_KEY])
            except BedrockError as err:
                return error_response(err, str(uuid.uuid4()))

        return wrapped

    def runtime(request: web.Request, batch: BatchState) -> Runtime:
        if batch.runtime is None:
            server = request.app[state_key]
            storage = Storage(batch.s3_endpoint) if batch.s3_endpoint else None
            batch.runtime = Runtime(server.backend, server.faults, storage, lambda: batch.knobs)
            batch.runtime.rng = random.Random(batch.knobs.seed)
        return batch.runtime

    async def create(request: web.Request, batch: BatchState) -> web.Response:
        body = json_body(await request.read())
        validate("CreateModelInvocationJob", body)
        table = batch.table
        token = body.get("clientRequestToken")
        if token and token in table.tokens:  # "Amazon Bedrock ignores the request, but does not return an error"
            return _json({"jobArn": table.jobs[table.tokens[token]].arn})
        if table.by_name(body["jobName"]) is not None:  # CreateModelImportJob's wording for the same case
            raise BedrockError("ValidationException", "The provided job name is currently in use.")
        spec = batch_model(body["modelId"], request.app[state_key].knobs.extra_model_ids)
        if table.active_for_model(spec.model_id) >= batch.knobs.max_jobs:
            raise BedrockError(
                "ServiceQuotaExceededException",
                f"You have reached the maximum of {batch.knobs.max_jobs} in-progress and submitted batch inference "
                f"jobs for {spec.model_id}. Wait for a job to finish, or request a quota increase.",
            )
        job = Job(new_job_id(), body, base_model=spec.model_id)
        hours = int(body.get("timeoutDurationInHours") or 24)
        job.expiration = job.submit_time + timedelta(seconds=hours * batch.knobs.hour_s)
        job.tags = {t["key"]: t["value"] for t in body.get("tags") or []}
        table.jobs[job.job_id] = job
        if token:
            table.tokens[token] = job.job_id
        job.task = asyncio.create_task(run_job(job, spec, runtime(request, batch)))
        log.info("batch job %s (%s) submitted for %s", job.job_id, job.name, job.model_id)
        return _json({"jobArn": job.arn})

    def find(batch: BatchState, identifier: str) -> Job:
        job = batch.table.find(identifier)
        if job is None:
            raise BedrockError("ResourceNotFoundException", f"The job {identifier} could not be found.")
        return job

    async def get(request: web.Request, batch: BatchState) -> web.Response:
        identifier = unquote(request.match_info["job"])
        validate("GetModelInvocationJob", {"jobIdentifier": identifier})
        return _json(find(batch, identifier).to_wire())

    async def stop(request: web.Request, batch: BatchState) -> web.Response:
        identifier = unquote(request.match_info["job"])
        validate("StopModelInvocationJob", {"jobIdentifier": identifier})
        job = find(batch, identifier)
        if job.status not in ACTIVE:
            raise BedrockError("ValidationException", f"The job {job.arn} is {job.status} and cannot be stopped.")
        job.set_status(JobStatus.STOPPING)
        job.stop.set()
        return _json({})

    async def listing(request: web.Request, batch: BatchState) -> web.Response:
        q = request.query
        params: dict = {k: q[k] for k in ("statusEquals", "nameContains", "nextToken", "sortBy", "sortOrder") if k in q}
        try:
            if "maxResults" in q:
                params["maxResults"] = int(q["maxResults"])
            times = {k: datetime.fromisoformat(q[k]) for k in ("submitTimeAfter", "submitTimeBefore") if k in q}
        except ValueError as err:
            raise BedrockError("ValidationException", f"Invalid query parameter: {err}") from err
        validate("ListModelInvocationJobs", params)
        jobs = batch.table.listing(
            status=params.get("statusEquals"),
            name_contains=params.get("nameContains"),
            after=times.get("submitTimeAfter"),
            before=times.get("submitTimeBefore"),
            descending=params.get("sortOrder", "Descending") == "Descending",
        )
        try:
            start = page_offset(params["nextToken"]) if "nextToken" in params else 0
        except ValueError as err:
            raise BedrockError("ValidationException", str(err)) from err
        size = params.get("maxResults", 1000)
        out: dict = {"invocationJobSummaries": [job.to_wire() for job in jobs[start : start + size]]}
        if start + size < len(jobs):
            out["nextToken"] = page_token(start + size)
        return _json(out)

    def tagged_job(batch: BatchState, body: dict) -> Job:
        job = batch.table.find(body["resourceARN"]) if body["resourceARN"].startswith("arn:") else None
        if job is None:
            raise BedrockError("ResourceNotFoundException", f"The resource {body['resourceARN']} could not be found.")
        return job

    async def list_tags(request: web.Request, batch: BatchState) -> web.Response:
        body = json_body(await request.read())
        validate("ListTagsForResource", body)
        job = tagged_job(batch, body)
        return _json({"tags": [{"key": k, "value": v} for k, v in job.tags.items()]})

    async def tag(request: web.Request, batch: BatchState) -> web.Response:
        body = json_body(await request.read())
        validate("TagResource", body)
        job = tagged_job(batch, body)
        merged = {**job.tags, **{t["key"]: t["value"] for t in body["tags"]}}
        if len(merged) > MAX_TAGS:
            raise BedrockError("TooManyTagsException")
        job.tags = merged
        return _json({})

    async def untag(request: web.Request, batch: BatchState) -> web.Response:
        body = json_body(await request.read())
        validate("UntagResource", body)
        job = tagged_job(batch, body)
        job.tags = {k: v for k, v in job.tags.items() if k not in set(body["tagKeys"])}
        return _json({})

    async def get_knobs(request: web.Request) -> web.Response:
        return _json(request.app[BATCH_KEY].knobs.to_dict())

    async def post_knobs(request: web.Request) -> web.Response:
        batch = request.app[BATCH_KEY]
        try:
            changes = orjson.loads(await request.read() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of knob: value")
            batch.knobs = batch.knobs.updated(changes)
        except (ValueError, orjson.JSONDecodeError) as err:
            return _json({"error": str(err)}, status=400)
        if "seed" in changes and batch.runtime is not None:
            batch.runtime.rng = random.Random(batch.knobs.seed)
        log.info("batch knobs changed: %s", changes)
        return _json(batch.knobs.to_dict())

    job_path = "/model-invocation-job/{job:[^/]+}"
    app.router.add_post("/model-invocation-job", guarded(create))
    app.router.add_get(job_path, guarded(get))
    app.router.add_post(job_path + "/stop", guarded(stop))
    app.router.add_get("/model-invocation-jobs", guarded(listing))
    app.router.add_post("/listTagsForResource", guarded(list_tags))
    app.router.add_post("/tagResource", guarded(tag))
    app.router.add_post("/untagResource", guarded(untag))
    app.router.add_get("/_admin/batch", get_knobs)
    app.router.add_post("/_admin/batch", post_knobs)

    async def _cancel_jobs(_: web.Application) -> None:
        tasks = [job.task for job in app[BATCH_KEY].table.jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.on_cleanup.append(_cancel_jobs)
