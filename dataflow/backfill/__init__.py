"""The backfill: a backlog (an archive, or a time range of the stream) enriched by Bedrock batch inference.

In: BACKFILL_* and the live flow's settings (dataflow/settings.py); records from an archive (CSV or JSONL,
local or s3://) or from the stream between two times. Out: the live flow's documents and dead letters, through
its sink (same indices, same ids, same versions), job files in S3 under BACKFILL_JOB_URL, a `report.json` and
the live flow's token and cost metrics at batch prices. `python -m bytewax.run dataflow.backfill` runs it.

- flow.py          the dataflow: input -> parse -> cut_jobs (S3); job_outputs source -> OpenSearch sinks
- archive.py       `ArchiveSource`: JSONL / CSV records, local or S3; an archive record's arrival (its date)
- stream_range.py  `StreamRangeSource`: every shard from BACKFILL_FROM to BACKFILL_TO, with the live backoff
- step.py          `CutLogic`: the Bytewax step around the cutter (emits nothing)
- chunks.py        `Cutter`: pages and jobs within the per-job quotas, markers, deterministic job names
- outputs.py       `JobOutputsSource`: the second input, one page of a finished job per batch, idle between polls
- planner.py       `Follower`: jobs submitted within the quota, followed, answers read back page by page
- files.py         the run's S3 layout (pages, markers, outputs, progress, run.json, report.json), record ids
- jobs.py          the control plane: create once (name and token), list the run's jobs, status, ETA
- requests.py      a review as an Anthropic Messages body; an output line through the live validation
- on_demand.py     the few records batch does not take, by Converse
- report.py        totals, tokens and cost (batch and on-demand prices)
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """`flow` is built on first access (by `python -m bytewax.run dataflow.backfill`), not on import, so the
    modules here import without settings."""
    if name == "flow":
        from dataflow.backfill.entry import build_from_environment

        return build_from_environment()
    raise AttributeError(name)
