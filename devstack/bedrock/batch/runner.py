"""A job's life, one asyncio task per job: Submitted -> Validating -> Scheduled -> InProgress -> a final status.

Final statuses, as Bedrock documents them: Completed (every record answered; some may carry `error`),
PartiallyCompleted (the timeout came while InProgress: the records done so far are written), Expired (the timeout
came before the job started: nothing written), Failed (validation refused the input, or the `fail_rate` fault:
nothing written), Stopped (StopModelInvocationJob: Stopping, then the records done so far are written).
Waiting is `asyncio.wait_for` on the job's stop event: an idle server does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import orjson

from devstack.bedrock.backends import Backend
from devstack.bedrock.batch.jobs import Job, JobStatus, now
from devstack.bedrock.batch.knobs import BatchKnobs
from devstack.bedrock.batch.records import Answer, InvalidInput, Record, answer, parse_file
from devstack.bedrock.batch.storage import InputFile, Storage, StorageError, output_prefix, split_uri
from devstack.bedrock.faults import Faults
from devstack.bedrock.models import ModelSpec

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """The job ends Failed with this message."""


@dataclass
class Runtime:
    """What every job's runner shares: the backend, the current knobs, S3, one seeded RNG."""

    backend: Backend
    faults: Faults
    storage: Storage | None
    knobs: Callable[[], BatchKnobs]
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class FileWork:
    file: InputFile
    records: list[Record]
    answers: list[Answer] = field(default_factory=list)
    written: bool = False


async def _pause(job: Job, seconds: float) -> str:
    """Wait `seconds` or until stopped or expired: "stop", "expired" or "ok"."""
    assert job.expiration is not None
    left = (job.expiration - now()).total_seconds()
    try:
        await asyncio.wait_for(job.stop.wait(), timeout=max(0.0, min(seconds, left)))
        return "stop"
    except TimeoutError:
        return "expired" if now() >= job.expiration else "ok"


async def run_job(job: Job, spec: ModelSpec, rt: Runtime) -> None:
    """Drive `job` to a final status; never raises (a bug ends the job Failed and is logged)."""
    try:
        await _lifecycle(job, spec, rt)
    except JobFailed as failed:
        job.set_status(JobStatus.FAILED, str(failed))
    except Exception as err:  # a bug here must not leave a job InProgress forever
        log.exception("batch job %s crashed", job.job_id)
        job.set_status(JobStatus.FAILED, f"Internal error: {err}")
    log.info("batch job %s (%s) ended %s: %s", job.job_id, job.name, job.status, job.message or "")


async def _stopped(job: Job, rt: Runtime, work: list[FileWork]) -> None:
    job.set_status(JobStatus.STOPPING)
    await asyncio.sleep(rt.knobs().stopping_s)
    await _write_outputs(job, rt, work, manifest=bool(work))
    job.set_status(JobStatus.STOPPED)


async def _lifecycle(job: Job, spec: ModelSpec, rt: Runtime) -> None:
    knobs = rt.knobs()
    if await _pause(job, knobs.submitted_s) == "stop":
        return await _stopped(job, rt, [])
    job.set_status(JobStatus.VALIDATING)
    work = await _validate(job, rt)
    if await _pause(job, rt.knobs().validating_s) == "stop":
        return await _stopped(job, rt, [])
    job.total = sum(len(w.records) for w in work)
    job.set_status(JobStatus.SCHEDULED)
    wait = timedelta(days=365).total_seconds() if rt.knobs().hold_scheduled else rt.knobs().scheduled_s
    outcome = await _pause(job, wait)
    if outcome == "stop":
        return await _stopped(job, rt, [])
    if outcome == "expired":
        job.set_status(JobStatus.EXPIRED, "The job timed out before it could start.")
        return None
    job.set_status(JobStatus.IN_PROGRESS)
    await _in_progress(job, spec, rt, work)
    return None


async def _validate(job: Job, rt: Runtime) -> list[FileWork]:
    knobs = rt.knobs()
    if rt.storage is None:
        log.error("batch: no S3 endpoint; start the server with --s3-endpoint URL (or AWS_ENDPOINT_URL_S3)")
        raise JobFailed("This local Bedrock server has no S3 endpoint: start it with --s3-endpoint URL.")
    storage = rt.storage
    in_uri = job.request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
    out_uri = job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
    try:
        files = await asyncio.to_thread(storage.input_files, in_uri)
        await asyncio.to_thread(storage.check_output, out_uri)
        if not files:
            raise JobFailed(f"No .jsonl files were found at the input S3 location {in_uri}.")
        if sum(f.size for f in files) > knobs.max_job_bytes:
            raise JobFailed(f"The input files exceed the maximum job size of {knobs.max_job_bytes} bytes.")
        work = []
        for f in files:
            if f.size > knobs.max_file_bytes:
                raise JobFailed(f"Input file {f.key} exceeds the maximum file size of {knobs.max_file_bytes} bytes.")
            raw = await asyncio.to_thread(storage.read, split_uri(in_uri)[0], f.key)
            records = await asyncio.to_thread(parse_file, raw, f.key, rt.rng)
            if len(records) > knobs.max_records_per_file:
                raise JobFailed(
                    f"Input file {f.key} has {len(records)} records, more than the maximum of "
                    f"{knobs.max_records_per_file} records per file."
                )
            work.append(FileWork(f, records))
    except (StorageError, InvalidInput) as err:
        raise JobFailed(str(err)) from err
    total = sum(len(w.records) for w in work)
    if total < knobs.min_records:
        raise JobFailed(
            f"The job has {total} records, fewer than the minimum of {knobs.min_records} records per batch "
            "inference job."
        )
    if total > knobs.max_records_per_job:
        raise JobFailed(
            f"The job has {total} records, more than the maximum of {knobs.max_records_per_job} records per batch "
            "inference job."
        )
    return work


async def _in_progress(job: Job, spec: ModelSpec, rt: Runtime, work: list[FileWork]) -> None:
    knobs = rt.knobs()
    fail_at = job.total // 2 if knobs.fail_rate and rt.rng.random() < knobs.fail_rate else None
    processing = asyncio.create_task(_process(job, spec, rt, work, fail_at))
    stopper = asyncio.create_task(job.stop.wait())
    assert job.expiration is not None
    left = max(0.0, (job.expiration - now()).total_seconds())
    done, _ = await asyncio.wait({processing, stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if processing not in done:
        processing.cancel()
        await asyncio.gather(processing, return_exceptions=True)
        if job.stop.is_set():
            return await _stopped(job, rt, work)
        await _write_outputs(job, rt, work, manifest=True)
        message = f"The job timed out with {job.processed} of {job.total} records processed."
        return job.set_status(JobStatus.PARTIALLY_COMPLETED, message)
    processing.result()  # JobFailed propagates
    await _write_outputs(job, rt, work, manifest=True)
    return job.set_status(JobStatus.COMPLETED)


async def _process(job: Job, spec: ModelSpec, rt: Runtime, work: list[FileWork], fail_at: int | None) -> None:
    for item in work:
        order = list(item.records)
        if rt.knobs().shuffle:
            rt.rng.shuffle(order)
        queue: asyncio.Queue[Record] = asyncio.Queue()
        for record in order:
            queue.put_nowait(record)

        async def worker(item: FileWork = item, queue: asyncio.Queue[Record] = queue) -> None:
            while not queue.empty():
                record = queue.get_nowait()
                knobs = rt.knobs()
                result = await answer(
                    record,
                    backend=rt.backend,
                    model_id=job.model_id,
                    spec=spec,
                    invocation_type=job.invocation_type,
                    faults=rt.faults,
                    error_rate=knobs.record_error_rate,
                    malformed_rate=knobs.record_malformed_rate,
                    rng=rt.rng,
                )
                # A backend that never suspends (lexicon) must not hold the loop: Get and on-demand calls go on.
                await asyncio.sleep(knobs.record_ms / 1000)
                item.answers.append(result)
                job.processed += 1
                job.success += result.ok
                job.errors += not result.ok
                job.input_tokens += result.input_tokens
                job.output_tokens += result.output_tokens
                job.last_modified = now()
                if fail_at is not None and job.processed >= fail_at:
                    raise JobFailed(knobs.fail_message)

        workers = [asyncio.create_task(worker()) for _ in range(min(rt.knobs().parallel, max(1, len(order))))]
        try:
            await asyncio.gather(*workers)
        finally:  # a failed job, a stop or a time-out: no worker goes on answering records
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        await _write_file(job, rt, item)


async def _write_file(job: Job, rt: Runtime, item: FileWork) -> None:
    if item.written or not item.answers:
        return
    out = output_prefix(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"], job.job_id)
    lines = [a.line for a in item.answers]
    if rt.knobs().shuffle:
        rt.rng.shuffle(lines)
    body = await asyncio.to_thread(lambda: b"".join(orjson.dumps(line) + b"\n" for line in lines))
    assert rt.storage is not None
    await asyncio.to_thread(rt.storage.write, out + item.file.relative + ".out", body)
    item.written = True


async def _write_outputs(job: Job, rt: Runtime, work: list[FileWork], *, manifest: bool) -> None:
    try:
        for item in work:
            await _write_file(job, rt, item)
        if manifest:
            doc = {
                "totalRecordCount": job.total or 0,
                "processedRecordCount": job.processed,
                "successRecordCount": job.success,
                "errorRecordCount": job.errors,
                "inputTokenCount": job.input_tokens,
                "outputTokenCount": job.output_tokens,
            }
            out = output_prefix(job.request["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"], job.job_id)
            assert rt.storage is not None
            await asyncio.to_thread(rt.storage.write, out + "manifest.json.out", orjson.dumps(doc))
    except StorageError as err:
        raise JobFailed(str(err)) from err
