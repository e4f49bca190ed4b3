"""The backfill's core: reviews cut into jobs, jobs submitted within the quota and followed, answers read back.

`Backfill` is plain Python (the Bytewax step in step.py only hands reviews over): `add` takes parsed reviews
and returns the outcomes of jobs that finished meanwhile, without waiting; `finish` cuts the tail and waits for
every job. Its memory is the chunk being filled; everything else is in S3 (dataflow/backfill/files.py), so a
restart rebuilds it: the chunks already cut (their reviews are skipped when read again), the jobs already
submitted (found by name: never submitted twice) and the jobs not yet submitted (submitted now, same name).

A job's answers go through the live flow's validation; records a job never answered (missing from its output,
or the job Failed, Stopped, Expired or PartiallyCompleted) go to a new job `<name>-r<n>` while they are at
least BACKFILL_MIN_RECORDS and BACKFILL_ON_DEMAND_BELOW and re-submissions are left (BACKFILL_MAX_RESUBMITS),
otherwise on demand (Converse).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dataflow import metrics
from dataflow.backfill.chunks import Chunk, Chunker, job_name
from dataflow.backfill.files import JobFiles
from dataflow.backfill.jobs import TERMINAL, Status, Tracked, list_run_jobs, refresh, submit
from dataflow.backfill.report import Report
from dataflow.backfill.requests import Outcome, model_input, read_output_line
from dataflow.records import DeadLetter, EnrichedReview, Review
from dataflow.settings import BackfillSettings, Settings

log = logging.getLogger(__name__)
Item = EnrichedReview | DeadLetter
OnDemand = Callable[[Sequence[tuple[Review, int]]], Iterable[Outcome]]


@dataclass(frozen=True)
class Clients:
    bedrock: Any  # boto3 `bedrock` (control plane)
    files: JobFiles
    on_demand: OnDemand


class Backfill:
    def __init__(self, settings: Settings, backfill: BackfillSettings, run_id: str, clients: Clients) -> None:
        self.settings, self.backfill, self.run_id = settings, backfill, run_id
        self.model_id = settings.bedrock_model_id
        self.bedrock, self.files, self.on_demand = clients.bedrock, clients.files, clients.on_demand
        self.report = Report(self.model_id)
        self.chunker = Chunker(backfill.min_records, backfill.max_records, backfill.max_file_bytes)
        self.jobs: dict[str, Tracked] = {}
        self.queue: list[str] = []  # cut, not yet submitted (the concurrent-job quota was full)
        self.seen: set[str] = set()  # review ids already in a chunk
        self.next_number = 1
        self.last_poll = 0.0
        self._resume()

    def _resume(self) -> None:
        existing = list_run_jobs(self.bedrock, self.run_id)
        for name in self.files.chunk_jobs():
            reviews = self.files.reviews(name)
            self.seen.update(r.review_id for r in reviews)
            base, _, again = name.removeprefix(self.run_id + "-").partition("-r")
            self.next_number = max(self.next_number, int(base) + 1)
            job = Tracked(name, len(reviews), int(again or 0), int(base))
            self.jobs[name] = job
            if name in existing:
                job.arn, job.status = existing[name]["jobArn"], Status(existing[name]["status"])
            else:
                self.queue.append(name)
        if self.jobs:
            log.info(
                "backfill.resumed run=%s chunks=%d running_or_done=%d to_submit=%d reviews=%d",
                self.run_id, len(self.jobs), len(self.jobs) - len(self.queue), len(self.queue), len(self.seen),
            )  # fmt: skip

    # -- input side ---------------------------------------------------------------------------------------
    def add(self, reviews: Iterable[Review]) -> list[Item]:
        for review in reviews:
            if review.review_id in self.seen:
                continue  # already in a chunk cut before a restart (or a duplicate in the input)
            self.seen.add(review.review_id)
            for chunk in self.chunker.add(review, _line(self, review)):
                self._cut(chunk)
        return list(self.pump(wait=False))

    def pending(self) -> list[Review]:
        """Reviews read but not yet in a chunk (the Bytewax snapshot keeps them)."""
        return [review for review, _ in self.chunker._pending.records]

    def _cut(self, chunk: Chunk, number: int | None = None, resubmit: int = 0) -> None:
        if number is None:
            number, self.next_number = self.next_number, self.next_number + 1
        name = job_name(self.run_id, number, resubmit)
        self.files.write_chunk(name, [r for r, _ in chunk.records], [line for _, line in chunk.records])
        self.jobs[name] = Tracked(name, len(chunk), resubmit, number)
        self.queue.append(name)

    # -- job side -----------------------------------------------------------------------------------------
    def pump(self, wait: bool) -> Iterator[Item]:
        """Submit what the quota allows, poll, and yield the outcomes of finished jobs; with `wait`, until all
        jobs are collected."""
        while True:
            self._submit_queued()
            now = time.monotonic()
            if now - self.last_poll >= self.backfill.poll_interval_s or not wait:
                if now - self.last_poll >= self.backfill.poll_interval_s:
                    self.last_poll = now
                    self._poll(now)
                for job in [j for j in self.jobs.values() if j.status in TERMINAL and not j.collected]:
                    yield from self._collect(job)
            if not wait or all(j.collected for j in self.jobs.values()):
                return
            time.sleep(min(self.backfill.poll_interval_s, 1.0))

    def finish(self) -> Iterator[Item]:
        chunks, rest = self.chunker.finish()
        for chunk in chunks:
            self._cut(chunk)
        if len(rest):
            log.info("backfill.on_demand records=%d reason=below_min_records", len(rest))
            yield from self._answer_on_demand([(r, 1) for r, _ in rest.records])
        yield from self.pump(wait=True)
        summary = self.report.summary()
        self.files.write_json("report.json", {"run_id": self.run_id, **summary})
        log.info("backfill.report run=%s %s", self.run_id, " ".join(f"{k}={v}" for k, v in summary.items()))

    def _submit_queued(self) -> None:
        active = sum(1 for j in self.jobs.values() if j.active)
        while self.queue and active < self.backfill.max_concurrent_jobs:
            job = self.jobs[self.queue[0]]
            if not submit(self.bedrock, job, self.files, self.backfill, self.model_id, self.run_id):
                return
            self.queue.pop(0)
            active += 1
            self.report.jobs_submitted += 1
            self.report.jobs_resubmitted += 1 if job.resubmit else 0

    def _poll(self, now: float) -> None:
        records = done = 0
        etas: list[float] = []
        for job in self.jobs.values():
            if job.active:
                refresh(self.bedrock, job)
                eta = job.eta_s(now)
                if eta is not None:
                    etas.append(eta)
                log.info(
                    "backfill.progress job=%s status=%s done=%d/%d eta_s=%s",
                    job.name, job.status, job.processed, job.records, "?" if eta is None else f"{eta:.0f}",
                )  # fmt: skip
            records += job.records
            done += job.records if job.collected else job.processed
        metrics.BACKFILL_RECORDS.labels("total").set(records)
        metrics.BACKFILL_RECORDS.labels("done").set(done)
        metrics.BACKFILL_ETA.set(max(etas) if etas else 0)
        for status in Status:
            metrics.BACKFILL_JOBS.labels(status.value).set(sum(1 for j in self.jobs.values() if j.status is status))

    def _collect(self, job: Tracked) -> Iterator[Item]:
        by_id = {r.review_id: r for r in self.files.reviews(job.name)}
        attempts = job.resubmit + 1
        for line in self.files.output_lines(job.name):
            review = by_id.pop(str(line.get("recordId")), None)
            if review is None:
                continue  # not one of this job's records, or answered twice: the first answer stands
            yield self._emit(read_output_line(review, line, self.model_id, attempts), batch=True)
        job.collected = True
        unanswered = list(by_id.values())
        manifest = self.files.manifest(job.name) or {}
        log.info(
            "backfill.collected job=%s status=%s records=%d unanswered=%d manifest_success=%s manifest_errors=%s",
            job.name, job.status, job.records, len(unanswered),
            manifest.get("successRecordCount"), manifest.get("errorRecordCount"),
        )  # fmt: skip
        if not unanswered:
            return
        enough = len(unanswered) >= max(self.backfill.min_records, self.backfill.on_demand_below)
        if enough and job.resubmit < self.backfill.max_resubmits:
            if job_name(self.run_id, job.number, job.resubmit + 1) not in self.jobs:  # after a restart it may
                chunk = Chunk()  # exist already: the same job, never a second one
                for review in unanswered:
                    chunk.add(review, _line(self, review))
                self._cut(chunk, job.number, job.resubmit + 1)
            return
        log.info("backfill.on_demand records=%d reason=unanswered_by=%s", len(unanswered), job.name)
        yield from self._answer_on_demand([(r, attempts + 1) for r in unanswered])

    def _answer_on_demand(self, reviews: Sequence[tuple[Review, int]]) -> Iterator[Item]:
        self.report.on_demand_records += len(reviews)
        for outcome in self.on_demand(reviews):
            yield self._emit(outcome, batch=False)

    def _emit(self, outcome: Outcome, batch: bool) -> Item:
        self.report.tokens(outcome.input_tokens, outcome.output_tokens, batch)
        self.report.count(outcome.item)
        return outcome.item


def _line(backfill: Backfill, review: Review) -> bytes:
    body = model_input(backfill.model_id, review.text, backfill.settings.bedrock_max_tokens_per_review)
    return orjson.dumps({"recordId": review.review_id, "modelInput": body})
