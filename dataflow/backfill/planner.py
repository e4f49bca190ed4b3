"""The job side of the backfill: follow the run's chunks, submit them within the quota, read answers page by page.

`Follower` is plain Python (the Bytewax source in outputs.py only calls it): `poll` lists the chunk markers the
input side wrote (S3), submits the unsubmitted ones (name = clientRequestToken: never twice), refreshes the
running ones; `read_page` turns one page of a finished job into outcomes: at most BACKFILL_PAGE_RECORDS reviews
and answers in memory, whatever the size of the backlog. Its state (`Progress`: pages read per job, the report's
totals) is what the source snapshots and commits to `progress.json`.

Answers go through the live flow's validation. A recordId that maps to no review of the page is a dead letter
`batch:unknown_record_id`. Records a page's job never answered are staged as the same page of `<name>-r<k+1>`;
when the job is read, they become a new job while there are at least BACKFILL_MIN_RECORDS and
BACKFILL_ON_DEMAND_BELOW and re-submissions are left (BACKFILL_MAX_RESUBMITS), otherwise an on-demand chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from dataflow import metrics
from dataflow.backfill.chunks import job_name
from dataflow.backfill.files import JobFiles, page_file, parse_record_id, record_id
from dataflow.backfill.jobs import Status, Tracked, list_run_jobs, refresh, submit
from dataflow.backfill.report import Report
from dataflow.backfill.requests import Outcome, model_input, read_output_line
from dataflow.records import DeadLetter, EnrichedReview, Review, truncate_raw
from dataflow.settings import BackfillSettings, Settings

log = logging.getLogger(__name__)
Item = EnrichedReview | DeadLetter
OnDemand = Callable[[Sequence[tuple[Review, int]]], Iterable[Outcome]]


@dataclass(frozen=True)
class Clients:
    bedrock: Any  # boto3 `bedrock` (control plane)
    files: JobFiles
    on_demand: OnDemand


@dataclass
class Progress:
    """What has been emitted: per job (pages read, unanswered staged, done), and the report's totals."""

    jobs: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    report: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": {k: list(v) for k, v in self.jobs.items()}, "report": self.report}

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Progress:
        doc = doc or {}
        return cls({k: (int(v[0]), int(v[1]), bool(v[2])) for k, v in doc.get("jobs", {}).items()},
                   dict(doc.get("report", {})))  # fmt: skip


class Follower:
    def __init__(
        self, settings: Settings, backfill: BackfillSettings, run_id: str, clients: Clients, progress: Progress
    ) -> None:
        self.settings, self.backfill, self.run_id = settings, backfill, run_id
        self.model_id = settings.bedrock_model_id
        self.bedrock, self.files, self.on_demand = clients.bedrock, clients.files, clients.on_demand
        self.report = Report(self.model_id, **{k: v for k, v in progress.report.items() if k != "model_id"})
        self.progress = progress
        self.jobs: dict[str, Tracked] = {}
        self.input_complete = False
        self.existing = list_run_jobs(self.bedrock, run_id)  # jobs submitted before a restart: followed, not re-made

    # -- following -----------------------------------------------------------------------------------------
    def poll(self) -> None:
        """New chunks, submissions within the quota, status of the running jobs, progress."""
        complete = self.files.read_json("input-complete.json") is not None  # before the markers: none is missed
        for name, marker in self.files.markers(frozenset(self.jobs)).items():
            self._track(name, marker)
        self.input_complete = complete
        self._submit_queued()
        self._refresh()

    def _track(self, name: str, marker: dict[str, Any]) -> None:
        job = Tracked(name, int(marker["records"]), int(marker.get("resubmit", 0)), int(marker["number"]))
        job.pages, job.on_demand = [int(p) for p in marker["pages"]], marker.get("kind") == "on_demand"
        job.read, job.unanswered, job.done = self.progress.jobs.get(name, (0, 0, False))
        if name in self.existing:
            job.arn, job.status = self.existing[name]["jobArn"], Status(self.existing[name]["status"])
        self.jobs[name] = job
        if job.arn or job.on_demand or job.done:
            return
        log.info("backfill.chunk job=%s records=%d pages=%d", name, job.records, len(job.pages))

    def _submit_queued(self) -> None:
        active = sum(1 for j in self.jobs.values() if j.active)
        for job in sorted(self.jobs.values(), key=lambda j: j.name):
            if active >= self.backfill.max_concurrent_jobs:
                return
            if job.arn or job.on_demand or job.done:
                continue
            if not submit(self.bedrock, job, self.files, self.backfill, self.model_id, self.run_id):
                return
            active += 1
            self.report.jobs_submitted += 1
            self.report.jobs_resubmitted += 1 if job.resubmit else 0

    def _refresh(self) -> None:
        now = time.monotonic()
        records = done = 0
        etas: list[float] = []
        for job in self.jobs.values():
            if job.active:
                refresh(self.bedrock, job)
                eta = job.eta_s(now)
                etas += [] if eta is None else [eta]
                log.info(
                    "backfill.progress job=%s status=%s done=%d/%d eta_s=%s",
                    job.name, job.status, job.processed, job.records, "?" if eta is None else f"{eta:.0f}",
                )  # fmt: skip
            records += job.records
            done += job.records if job.done else job.processed
        metrics.BACKFILL_RECORDS.labels("total").set(records)
        metrics.BACKFILL_RECORDS.labels("done").set(done)
        metrics.BACKFILL_ETA.set(max(etas) if etas else 0)
        for status in Status:
            metrics.BACKFILL_JOBS.labels(status.value).set(sum(1 for j in self.jobs.values() if j.status is status))

    def readable(self) -> Tracked | None:
        return next((j for j in sorted(self.jobs.values(), key=lambda j: j.name) if j.readable), None)

    def complete(self) -> bool:
        """Every record of the input is cut, and every chunk is read and handed on."""
        return self.input_complete and all(j.done for j in self.jobs.values())

    # -- reading -------------------------------------------------------------------------------------------
    def read_page(self, job: Tracked) -> list[Item]:
        """The outcomes of the job's next page (or the job's end: unanswered handed on)."""
        if job.read >= len(job.pages):
            self._hand_on(job)
            return []
        page = job.pages[job.read]
        reviews = self.files.page_reviews(job.name, page)
        attempts = job.resubmit + 1
        if job.on_demand:
            out = [self._emit(o, batch=False) for o in self.on_demand([(r, attempts) for r in reviews])]
            self.report.on_demand_records += len(reviews)
        else:
            out = self._answers(job, page, reviews, attempts)
        job.read += 1
        self._record(job)
        if job.read >= len(job.pages):
            self._hand_on(job)
        return out

    def _answers(self, job: Tracked, page: int, reviews: list[Review], attempts: int) -> list[Item]:
        if job.outputs is None:
            job.outputs = self.files.output_keys(job.name)
        answered = [False] * len(reviews)
        out: list[Item] = []
        key = job.outputs.get(page_file(page) + ".out")
        for line in self.files.output_lines(key) if key else ():
            where = parse_record_id(line.get("recordId"))
            if where is None or where[0] != page or where[1] >= len(reviews):
                out.append(self._unknown(job, line))
                continue
            if answered[where[1]]:
                log.warning("backfill.duplicate_answer job=%s record=%s (first stands)", job.name, line["recordId"])
                continue
            answered[where[1]] = True
            out.append(self._emit(read_output_line(reviews[where[1]], line, self.model_id, attempts), batch=True))
        missing = [r for r, seen in zip(reviews, answered, strict=True) if not seen]
        if missing:  # staged as the same page of the next attempt, durable before these outcomes are emitted
            again = job_name(self.run_id, job.number, job.resubmit + 1)
            lines = [orjson.dumps({"recordId": record_id(page, i), "modelInput": self._body(r)})
                     for i, r in enumerate(missing)]  # fmt: skip
            self.files.write_page(again, page, missing, lines)
            job.unanswered += len(missing)
        return out

    def _hand_on(self, job: Tracked) -> None:
        """All pages read: the unanswered become a job, or an on-demand chunk; the job is done."""
        if job.unanswered and not job.on_demand:
            again = job_name(self.run_id, job.number, job.resubmit + 1)
            enough = job.unanswered >= max(self.backfill.min_records, self.backfill.on_demand_below)
            kind = "batch" if enough and job.resubmit < self.backfill.max_resubmits else "on_demand"
            pages = self.files.staged_pages(again)
            self.files.write_marker(again, {"number": job.number, "resubmit": job.resubmit + 1,
                                            "records": job.unanswered, "pages": pages, "kind": kind})  # fmt: skip
            log.info("backfill.unanswered job=%s records=%d to=%s kind=%s", job.name, job.unanswered, again, kind)
        manifest = {} if job.on_demand else self.files.manifest(job.name) or {}
        log.info(
            "backfill.collected job=%s status=%s records=%d unanswered=%d manifest_success=%s manifest_errors=%s",
            job.name, job.status or "on_demand", job.records, job.unanswered,
            manifest.get("successRecordCount"), manifest.get("errorRecordCount"),
        )  # fmt: skip
        job.done = True
        self._record(job)

    def _record(self, job: Tracked) -> None:
        self.progress.jobs[job.name] = (job.read, job.unanswered, job.done)
        self.progress.report = {k: v for k, v in asdict(self.report).items() if k != "model_id"}

    def _unknown(self, job: Tracked, line: dict[str, Any]) -> DeadLetter:
        """An answer for no review of this page: a dead letter naming the job and the recordId, never dropped."""
        rid = str(line.get("recordId"))
        self.report.unknown_records += 1
        raw = truncate_raw(orjson.dumps({k: v for k, v in line.items() if k != "modelInput"}))
        letter = DeadLetter(f"{job.name}-{rid}", "enrich", "batch:unknown_record_id",
                            f"job {job.name} answered recordId {rid!r}, which maps to no review of its input",
                            raw, "batch", f"{job.name}/{rid}")  # fmt: skip
        self.report.count(letter)
        return letter

    def _body(self, review: Review) -> dict[str, Any]:
        return model_input(self.model_id, review.text, self.settings.bedrock_max_tokens_per_review)

    def _emit(self, outcome: Outcome, batch: bool) -> Item:
        self.report.tokens(outcome.input_tokens, outcome.output_tokens, batch)
        self.report.count(outcome.item)
        return outcome.item

    def write_report(self) -> None:
        summary = self.report.summary()
        self.files.write_json("report.json", {"run_id": self.run_id, **summary})
        log.info("backfill.report run=%s %s", self.run_id, " ".join(f"{k}={v}" for k, v in summary.items()))
