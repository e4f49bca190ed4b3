"""Cutting reviews into batch jobs within Bedrock's per-job quotas, and naming them deterministically.

A job holds between BACKFILL_MIN_RECORDS and BACKFILL_MAX_RECORDS records, in one input file of at most
BACKFILL_MAX_FILE_BYTES. A chunk of the maximum is cut only once a minimum more is waiting, so what is left at
the end is either a job of its own or, below the minimum, too few for batch (it goes on demand). Names derive
from the run id and the chunk's number (and its re-submission), so a restart computes the same names and finds
the jobs it already submitted instead of submitting them again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from dataflow.records import Review

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
class Chunk:
    """Records of one job input file: (review, its JSONL line) in order."""

    records: list[tuple[Review, bytes]] = field(default_factory=list)
    size: int = 0

    def add(self, review: Review, line: bytes) -> None:
        self.records.append((review, line))
        self.size += len(line) + 1

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class Chunker:
    """Collects record lines and hands out full chunks; `finish` splits what is left within the quotas."""

    min_records: int
    max_records: int
    max_bytes: int
    _pending: Chunk = field(default_factory=Chunk)

    def add(self, review: Review, line: bytes) -> list[Chunk]:
        """Add one record; returns the chunks it completed (usually none)."""
        if len(line) + 1 > self.max_bytes:
            raise ValueError(f"one record is {len(line)} bytes, over BACKFILL_MAX_FILE_BYTES={self.max_bytes}")
        self._pending.add(review, line)
        cut: list[Chunk] = []
        # A full chunk leaves at least min_records behind, so the tail is never a too-small job after a big one.
        while len(self._pending) >= self.max_records + self.min_records:
            cut.append(self._take(self.max_records))
        if self._pending.size > self.max_bytes:  # bytes bind before records: cut all but the newest record
            cut.append(self._take(len(self._pending) - 1))
        return cut

    def finish(self) -> tuple[list[Chunk], Chunk]:
        """(chunks for jobs, a remainder below the minimum for on-demand): empties the chunker."""
        rest, self._pending = self._pending, Chunk()
        if len(rest) < self.min_records:
            return [], rest
        if len(rest) <= self.max_records:
            return [rest], Chunk()
        half = len(rest) // 2  # max + 1 .. max + min - 1 records: two jobs of at least min each
        first, second = Chunk(), Chunk()
        for i, (review, line) in enumerate(rest.records):
            (first if i < half else second).add(review, line)
        return [first, second], Chunk()

    def _take(self, count: int) -> Chunk:
        taken = Chunk()
        for review, line in self._pending.records[:count]:
            taken.add(review, line)
        remaining = Chunk()
        for review, line in self._pending.records[count:]:
            remaining.add(review, line)
        self._pending = remaining
        return taken
