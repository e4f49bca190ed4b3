"""Assemble the backfill: two bounded inputs, joined only through the run's files in S3.

archive | stream range --KinesisRecord--> parse --Review--> one key --> cut_jobs (pages + markers -> S3)
     \\-- parse DeadLetter ---------------------------------------------------------+
job_outputs (follows the markers and Bedrock's jobs) --page of outcomes--+-----> dead letters sink
                                         EnrichedReview --> results sink (same index, same versions)

Nothing flows backward: the input side writes chunk markers, the job outputs source reads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from dataflow import metrics
from dataflow.backfill.archive import ArchiveSource, archive_arrival
from dataflow.backfill.chunks import CutState, Cutter, Limits, run_id_for
from dataflow.backfill.files import JobFiles
from dataflow.backfill.on_demand import enrich_on_demand, runtime_client
from dataflow.backfill.outputs import JobOutputsSource
from dataflow.backfill.planner import Clients, Follower, Progress
from dataflow.backfill.requests import model_input
from dataflow.backfill.step import logic_builder
from dataflow.backfill.stream_range import StreamRangeSource
from dataflow.opensearch_sink.sink import OpenSearchSink
from dataflow.parse import parse_record
from dataflow.records import DeadLetter, EnrichedReview, KinesisRecord, Review
from dataflow.settings import BackfillSettings, Settings

log = logging.getLogger(__name__)


def run_identity(settings: Settings, backfill: BackfillSettings) -> str:
    if backfill.run_id:
        return backfill.run_id
    what = backfill.archive or f"{settings.kinesis_stream_name}@{backfill.start}..{backfill.end}"
    return run_id_for(what, settings.bedrock_model_id)


def run_arrival_ms(files: JobFiles, run_id: str, settings: Settings, backfill: BackfillSettings) -> int:
    """The run's start, kept in run.json: the latest arrival an archive record can get (archive_arrival)."""
    known = files.read_json("run.json")
    if known is not None:
        return int(known["arrival_ms"])
    arrival = int(datetime.now(UTC).timestamp() * 1000)
    files.write_json(
        "run.json",
        {"run_id": run_id, "arrival_ms": arrival, "model_id": settings.bedrock_model_id,
         "archive": backfill.archive, "from": str(backfill.start), "to": str(backfill.end)},
    )  # fmt: skip
    return arrival


def build_backfill(
    settings: Settings,
    backfill: BackfillSettings,
    *,
    client: Callable[[str], Any] = lambda service: boto3.client(service),
    source: Source[KinesisRecord] | None = None,
    results_sink: Sink[Any] | None = None,
    dead_letter_sink: Sink[Any] | None = None,
) -> Dataflow:
    run_id = run_identity(settings, backfill)
    files = JobFiles(client("s3"), backfill.job_url, run_id)
    run_start_ms: int | None = None
    if source is None and backfill.archive:
        run_start_ms = run_arrival_ms(files, run_id, settings, backfill)
        source = ArchiveSource(backfill.archive, files.s3, run_start_ms)
    elif source is None:
        assert backfill.start is not None and backfill.end is not None
        source = StreamRangeSource(client("kinesis"), settings.kinesis_stream_name, backfill.start, backfill.end)
    log.info("backfill.start run=%s model=%s input=%s", run_id, settings.bedrock_model_id, backfill.archive or "stream")
    limits = Limits(backfill.min_records, backfill.max_records, backfill.max_file_bytes, backfill.page_records)

    def body(review: Review) -> dict[str, Any]:
        return model_input(settings.bedrock_model_id, review.text, settings.bedrock_max_tokens_per_review)

    def make_cutter(state: CutState | None) -> Cutter:
        return Cutter(files, run_id, limits, body, state)

    def make_follower(progress: Progress) -> Follower:
        runtime = runtime_client(settings)
        clients = Clients(client("bedrock"), files, lambda reviews: enrich_on_demand(runtime, settings, reviews))
        return Follower(settings, backfill, run_id, clients, progress)

    flow = Dataflow("reviewstream-backfill")
    records = op.input("records", flow, source)

    def parse(record: KinesisRecord) -> Review | DeadLetter:
        result = parse_record(record, settings.review_max_chars)
        if isinstance(result, DeadLetter):
            metrics.DEAD_LETTERS.labels("parse", result.error_type).inc()
        elif run_start_ms is not None:
            result = archive_arrival(result, run_start_ms)
        return result

    parsed = op.map("parse", records, parse)
    valid = op.branch("valid", parsed, lambda item: isinstance(item, Review))
    keyed = op.key_on("one_cutter", valid.trues, lambda _review: "backfill")
    op.stateful_batch("cut_jobs", keyed, logic_builder(make_cutter))
    outcomes = op.input(
        "job_outputs",
        flow,
        JobOutputsSource(make_follower, lambda: files.read_json("progress.json"), backfill.poll_interval_s),
    )
    succeeded = op.branch("succeeded", outcomes, lambda item: isinstance(item, EnrichedReview))
    dead: Any = op.merge("dead_letters", valid.falses, succeeded.falses)
    op.output("opensearch_results", succeeded.trues, results_sink or OpenSearchSink(settings, "results"))
    op.output("opensearch_dead_letters", dead, dead_letter_sink or OpenSearchSink(settings, "dead_letters"))
    return flow
