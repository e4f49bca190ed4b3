"""Cutting reviews into batch jobs within Bedrock's per-job quotas, page by page, and naming them deterministically.

A job holds at most BACKFILL_MAX_RECORDS records and BACKFILL_MAX_FILE_BYTES of input, in input files ("pages")
of BACKFILL_PAGE_RECORDS records written to S3 as they fill: the cutter holds one page, never a whole job. A job
is closed when full; at the end of the input, a last chunk below BACKFILL_MIN_RECORDS is too small for batch and
is marked for on demand. The marker of a chunk carries, per shard, the highest sequence number in a closed
chunk, so a rerun over the same input skips what is already cut (positions, not a set of ids: bounded memory).
Names derive from the run id and the chunk's number (and its re-submission), so a restart computes the same
names and finds the jobs it already submitted instead of submitting them again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from dataflow.backfill.files import JobFiles, record_id
from dataflow.records import Review

Kind = Literal["batch", "on_demand"]
log = logging.getLogger(__name__)

JOB_NAME_MAX = 63  # CreateModelInvocationJob jobName: [a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}, 63 chars


def run_id_for(*parts: str) -> str:
    """A short stable id for a backfill from what defines it (input, range, model)."""
    return "bf-" + hashlib.blake2b("\x1f".join(parts).encode(), digest_size=6).hexdigest()


def job_name(run_id: str, number: int, resubmit: int = 0) -> str:
    """`<run>-<number>[-r<n>]`: valid as both jobName and clientRequestToken (letters, digits and '-')."""
    name = f"{run_id}-{number:05d}" + (f"-r{resubmit}" if resubmit else "")
    if len(name) > JOB_NAME_MAX or not re.fullmatch(r"[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*", name):
        raise ValueError(f"job name {name!r} is not a valid Bedrock job name")
    return name


@dataclass
class OpenChunk:
    """The chunk being filled: its full pages are in S3 already, `page` is the one in memory."""

    number: int
    records: int = 0
    size: int = 0
    pages: int = 0
    page: list[tuple[Review, bytes]] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)


@dataclass
class CutState:
    """What the cutter needs to go on: the open chunk and, per shard, the last position in a closed chunk."""

    open: OpenChunk
    covered: dict[str, int] = field(default_factory=dict)


def position(review: Review) -> int | None:
    """A record's place in its shard (archive line, Kinesis sequence number), comparable within the shard."""
    return int(review.sequence_number) if review.sequence_number.isdigit() else None


class Cutter:
    """Reviews in, job pages and markers out to S3 (dataflow/backfill/files.py)."""

    def __init__(self, files: JobFiles, run_id: str, limits: Limits, body: Callable[[Review], dict[str, Any]],
                 state: CutState | None = None) -> None:  # fmt: skip
        self.files, self.run_id, self.limits, self.body = files, run_id, limits, body
        self.state = state or self._from_markers()

    def _from_markers(self) -> CutState:
        covered: dict[str, int] = {}
        number = 0
        for marker in self.files.markers().values():
            number = max(number, int(marker["number"]))
            for shard, pos in marker.get("covered", {}).items():
                covered[shard] = max(covered.get(shard, -1), int(pos))
        if number:
            log.info("backfill.resumed run=%s chunks_cut=%d covered=%s", self.run_id, number, covered)
        return CutState(OpenChunk(number + 1), covered)

    def add(self, review: Review) -> None:
        pos = position(review)
        if pos is not None and pos <= self.state.covered.get(review.shard_id, -1):
            return  # in a chunk cut before this run restarted
        body = orjson.dumps(self.body(review))
        size = len(body) + len(b'{"recordId":"","modelInput":}') + 12
        if size > self.limits.max_bytes:
            raise ValueError(f"one record is {size} bytes, over BACKFILL_MAX_FILE_BYTES={self.limits.max_bytes}")
        chunk = self.state.open
        if chunk.records and chunk.size + size > self.limits.max_bytes:
            self._close("batch")
            chunk = self.state.open
        rid = record_id(chunk.pages, len(chunk.page))
        chunk.page.append((review, b'{"recordId":"' + rid.encode() + b'","modelInput":' + body + b"}"))
        chunk.records += 1
        chunk.size += size
        if pos is not None:
            chunk.positions[review.shard_id] = max(chunk.positions.get(review.shard_id, -1), pos)
        if len(chunk.page) >= self.limits.page_records:
            self._flush()
        if chunk.records >= self.limits.max_records:
            self._close("batch")

    def finish(self) -> None:
        """The input ended: the last chunk is a job, or on demand below the minimum; then the run is all cut."""
        if self.state.open.records:
            self._close("batch" if self.state.open.records >= self.limits.min_records else "on_demand")
        self.files.write_json("input-complete.json", {"chunks": self.state.open.number - 1})

    def _flush(self) -> None:
        chunk = self.state.open
        if chunk.page:
            self.files.write_page(self.name(chunk.number), chunk.pages, *map(list, zip(*chunk.page, strict=True)))
            chunk.pages += 1
            chunk.page = []

    def _close(self, kind: Kind) -> None:
        self._flush()
        chunk = self.state.open
        name = self.name(chunk.number)
        pages = list(range(chunk.pages))
        self.files.drop_pages_except(name, pages)
        for shard, pos in chunk.positions.items():
            self.state.covered[shard] = max(self.state.covered.get(shard, -1), pos)
        marker = {"number": chunk.number, "resubmit": 0, "records": chunk.records, "pages": pages, "kind": kind,
                  "covered": self.state.covered}  # fmt: skip
        self.files.write_marker(name, marker)
        self.state.open = OpenChunk(chunk.number + 1)

    def name(self, number: int) -> str:
        return job_name(self.run_id, number)


@dataclass(frozen=True)
class Limits:
    min_records: int
    max_records: int
    max_bytes: int
    page_records: int
