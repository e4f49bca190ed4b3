"""One virtual partition of the Kinesis source: the shards whose id hashes to it (see source.py). It:

- lists the shards at run time (ListShards, every KINESIS_DISCOVERY_INTERVAL_S and right after a shard
  ends), so splits and merges are followed without a restart; a shard that leaves the listing (expired out
  of retention) is forgotten: its position, reader and metric label sets are dropped;
- starts a child shard only after every parent is drained (parents owned by a partition of this process
  are known exactly through `DrainLedger`; a parent owned by another process only needs to be closed);
- starts a shard it has no checkpoint for at KINESIS_START_POSITION, children included (shards.py says how);
- checkpoints, per shard, the last sequence number emitted (resume AFTER it), `end` for a drained shard
  (kept until the shard leaves the listing so a restart never re-reads it), or the start timestamp;
- paces GetRecords to at most 5 calls/s/shard through `next_awake` (it never sleeps in `next_batch`), slows
  a caught-up shard down to one call per KINESIS_IDLE_POLL_MAX_S (AWS's advice for idle shards), and
  while the enrichment buffers are full and none of their reviews completes, backs its re-poll off from
  20 ms to KINESIS_BACKPRESSURE_MAX_WAIT_S; it never sleeps longer than EPOCH_WAKE_S (see next_awake);
- on a read error, re-reads from the checkpoint after a backoff (reader.py);
- with KINESIS_STOP_AT_END, ends once every shard read by this process is drained or caught up with the
  tip (partitions of one process stop together, so a shard born of a late reshard is not orphaned).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bytewax.inputs import StatefulSourcePartition

from dataflow import metrics
from dataflow.backoff import full_jitter
from dataflow.channels.backpressure import BufferGauge
from dataflow.heartbeat import Heartbeat
from dataflow.kinesis_source.drain_ledger import DrainLedger
from dataflow.kinesis_source.hold_back import HoldBack
from dataflow.kinesis_source.reader import BACKOFF_BASE_S, MIN_POLL_S, ShardReader, error_code
from dataflow.kinesis_source.shards import ShardInfo, list_all_shards, shard_owner, start_iterator
from dataflow.records import KinesisRecord
from dataflow.settings import Settings

log = logging.getLogger(__name__)

END = "end"
EPOCH_WAKE_S = 1.0  # the longest a partition sleeps: Bytewax's snapshot interval (-s) is at least 1 s
JOB_START = "@start"  # snapshot key (not a shard id): when this partition's job first started, for LATEST
ShardPositions = dict[str, str]  # shard id -> "seq:<n>" | "ts:<iso>" | "end"; JOB_START -> "ts:<iso>"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KinesisPartition(StatefulSourcePartition[KinesisRecord, ShardPositions]):
    """One virtual partition: the shards that hash to `index`."""

    def __init__(
        self,
        client: Any,
        settings: Settings,
        index: int,
        resume_state: ShardPositions | None,
        *,
        ledger: DrainLedger,
        buffers: BufferGauge | None = None,
        heartbeat: Heartbeat | None = None,
        on_listing: Callable[[int], None] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        """`ledger` is shared by the partitions of this process; `buffers` is the enrichment room this source
        holds back for (none: read as fast as Kinesis allows); `heartbeat` is beaten on every poll; `on_listing` is
        told how many shards of the stream are open after every listing."""
        self._client = client
        self._stream = settings.kinesis_stream_name
        self._partitions = settings.kinesis_partitions
        self._index = index
        self._start = settings.kinesis_start_position
        self._limit = settings.kinesis_get_records_limit
        self._poll_s = max(MIN_POLL_S, settings.kinesis_poll_interval_s)
        self._idle_max_s = settings.kinesis_idle_poll_max_s
        self._discovery_s = settings.kinesis_discovery_interval_s
        self._stop_at_end = settings.kinesis_stop_at_end
        self._hold = HoldBack(settings.kinesis_backpressure_max_wait_s)
        self._ledger = ledger
        self._buffers = buffers or BufferGauge()
        self._heartbeat = heartbeat or Heartbeat(None)
        self._on_listing = on_listing
        self._now = now
        # Partitions of this process register as Bytewax builds them; until they all have, an owner missing
        # from the ledger may still be local, so it is not yet taken for another process's.
        self._local_grace_until = now() + timedelta(seconds=max(2.0, self._discovery_s))
        self._positions: ShardPositions = dict(resume_state or {})
        job_start = self._positions.pop(JOB_START, None)
        # A state from before JOB_START was kept has no job start: its children fall back to TRIM_HORIZON.
        self._job_start = datetime.fromisoformat(job_start[3:]) if job_start else (None if resume_state else now())
        self._listing: dict[str, ShardInfo] = {}
        self._readers: dict[str, ShardReader] = {}
        self._next_discovery = now()
        self._discovery_failures = 0
        self._discovered_once = False
        self._finished = False
        self._last_batch_at = now()
        self._snapshotted = False  # called next in the next epoch: Bytewax calls that only once this one completed
        ledger.register(self._stream, index)
        for shard_id, pos in self._positions.items():
            if pos == END:
                ledger.mark_drained(self._stream, shard_id)
        self._discover(first=True)

    def _owned(self, shard_id: str) -> bool:
        return shard_owner(shard_id, self._partitions) == self._index

    # -- discovery -------------------------------------------------------------------------------------

    def _discover(self, first: bool = False) -> None:
        now = self._now()
        try:
            listing = {s.shard_id: s for s in map(ShardInfo.from_api, list_all_shards(self._client, self._stream))}
        except ClientError as err:
            code = error_code(err)
            if first and code == "ResourceNotFoundException":
                raise RuntimeError(
                    f"Kinesis stream {self._stream!r} not found (KINESIS_STREAM_NAME); create it first"
                ) from err
            self._discovery_failed(self._now(), code, err)
            return
        except BotoCoreError as err:
            if first:
                raise RuntimeError(f"cannot reach Kinesis to list shards of {self._stream!r}: {err}") from err
            self._discovery_failed(self._now(), type(err).__name__, err)
            return
        self._discovery_failures = 0
        self._discovered_once = True
        self._next_discovery = now + timedelta(seconds=self._discovery_s)
        self._forget_unlisted(listing)
        self._listing = listing
        if self._on_listing is not None:
            self._on_listing(sum(not shard.closed for shard in listing.values()))
        for shard in listing.values():
            if not self._owned(shard.shard_id):
                continue
            if shard.shard_id in self._readers or self._positions.get(shard.shard_id) == END:
                continue
            if self._parents_drained(shard):
                self._readers[shard.shard_id] = ShardReader(shard.shard_id, next_poll=now)
                log.info(
                    "kinesis.shard_started partition=%d shard=%s position=%s",
                    self._index,
                    shard.shard_id,
                    self._positions.get(shard.shard_id, "start"),
                )

    def _forget_unlisted(self, listing: dict[str, ShardInfo]) -> None:
        """A shard gone from the listing (expired out of retention) is never read again: drop its state.

        A drained shard's `end` is kept while the shard is listed (else a restart would re-read it).
        """
        gone = {s for s in (*self._positions, *self._readers, *self._listing) if s not in listing and self._owned(s)}
        for shard_id in gone:
            self._positions.pop(shard_id, None)
            self._readers.pop(shard_id, None)
            self._ledger.forget(self._stream, shard_id)
            metrics.drop_shard(shard_id)
            log.info("kinesis.shard_forgotten partition=%d shard=%s", self._index, shard_id)

    def _discovery_failed(self, now: datetime, code: str, err: Exception) -> None:
        metrics.KINESIS_ERRORS.labels(code).inc()
        delay = full_jitter(self._discovery_failures, BACKOFF_BASE_S, self._discovery_s, floor=MIN_POLL_S)
        self._discovery_failures += 1
        self._next_discovery = now + timedelta(seconds=delay)
        log.warning("kinesis.list_shards_failed partition=%d error=%s retry_in_s=%.2f", self._index, err, delay)

    def _parents_drained(self, shard: ShardInfo) -> bool:
        for parent in shard.parents:
            info = self._listing.get(parent)
            if info is None:
                continue  # expired out of retention: nothing left to read
            owner = shard_owner(parent, self._partitions)
            if owner == self._index:
                if self._positions.get(parent) != END:
                    return False
            elif self._ledger.owns(self._stream, owner):
                if not self._ledger.is_drained(self._stream, parent):
                    return False
            elif self._now() < self._local_grace_until or not info.closed:
                return False  # owned by another process: at least wait until it is closed
        return True

    # -- reading ---------------------------------------------------------------------------------------

    def _iterator_args(self, shard_id: str) -> dict[str, Any]:
        args, position = start_iterator(
            self._positions.get(shard_id), self._start, self._listing.get(shard_id), self._job_start, self._now()
        )
        if position is not None:
            self._positions[shard_id] = position
        return args

    def _read_failed(self, reader: ShardReader, code: str) -> None:
        """The backoff counts from the failure, not from the start of the batch: a slow failed call (a timeout)
        would otherwise leave a retry time already past, and Bytewax calls again at once."""
        metrics.KINESIS_ERRORS.labels(code).inc()
        delay = reader.failed(self._now())  # the iterator is re-acquired from the checkpoint
        level = logging.INFO if code == "ExpiredIteratorException" else logging.WARNING
        log.log(level, "kinesis.read_failed shard=%s error=%s retry_in_s=%.2f", reader.shard_id, code, delay)

    def _poll(self, reader: ShardReader, now: datetime, limit: int) -> list[KinesisRecord]:
        try:
            page = reader.read(self._client, self._stream, limit, lambda: self._iterator_args(reader.shard_id))
        except ClientError as err:
            code = error_code(err)
            if code == "ResourceNotFoundException" and reader.shard_id not in self._listing:
                self._readers.pop(reader.shard_id, None)  # trimmed away: nothing left to read
                return []
            self._read_failed(reader, code)
            return []
        except BotoCoreError as err:
            self._read_failed(reader, type(err).__name__)
            return []
        if page.records:
            self._positions[reader.shard_id] = f"seq:{page.records[-1].sequence_number}"
            metrics.RECORDS_READ.labels(reader.shard_id).inc(len(page.records))
        if page.lag_ms is not None:
            metrics.SHARD_LAG_MS.labels(reader.shard_id).set(page.lag_ms)
        if page.drained:
            self._shard_drained(reader, now)
        else:
            reader.schedule(page, now, self._poll_s, self._idle_max_s)
        return page.records

    def _shard_drained(self, reader: ShardReader, now: datetime) -> None:
        self._positions[reader.shard_id] = END
        self._readers.pop(reader.shard_id, None)
        self._ledger.mark_drained(self._stream, reader.shard_id)
        with contextlib.suppress(KeyError):
            metrics.SHARD_LAG_MS.remove(reader.shard_id)  # a drained shard has no lag to report
        self._next_discovery = now  # children may be ready now
        log.info("kinesis.shard_drained partition=%d shard=%s", self._index, reader.shard_id)

    def _all_caught_up(self) -> bool:
        if not self._discovered_once:
            return False
        for shard in self._listing.values():
            if not self._owned(shard.shard_id) or self._positions.get(shard.shard_id) == END:
                continue
            reader = self._readers.get(shard.shard_id)
            if reader is None or not reader.caught_up:
                return False
        return True

    # -- Bytewax partition API -------------------------------------------------------------------------

    def next_batch(self) -> Iterable[KinesisRecord]:
        self._heartbeat.beat()  # liveness: this worker still polls its source (no-op without HEARTBEAT_FILE)
        if self._finished:
            raise StopIteration
        if self._snapshotted:
            metrics.EPOCHS.completed()  # the epoch of the last snapshot is complete everywhere (metrics.EpochClock)
            self._snapshotted = False
        try:
            return self._read_batch(self._now())
        finally:
            self._last_batch_at = self._now()  # when it ended: `next_awake` counts its waits from there

    def _read_batch(self, now: datetime) -> list[KinesisRecord]:
        if now >= self._next_discovery:
            self._discover()
        batch: list[KinesisRecord] = []
        held_back = False
        taken: dict[int | None, int] = {}  # records read per enriching engine (channels/backpressure.py)
        for reader in list(self._readers.values()):
            if reader.next_poll <= now:
                room, engine = self._buffers.room_for(reader.shard_id), self._buffers.enricher_of(reader.shard_id)
                if room is not None and room - taken.get(engine, 0) <= 0:
                    held_back = True  # its enrichment is full: read nothing of this shard, look again soon
                    continue
                limit = self._limit if room is None else min(self._limit, room - taken.get(engine, 0))
                records = self._poll(reader, now, limit)
                if records:
                    self._buffers.note_read(reader.shard_id)
                taken[engine] = taken.get(engine, 0) + len(records)
                batch.extend(records)
        if held_back:
            self._hold.hold(self._buffers.freed())
            return batch
        self._hold.release()
        if self._stop_at_end:
            # Caught up *and* enriched: ending the input while reviews are still with the model would make Bytewax
            # call each key's on_eof, which holds all its results back until its last one is done.
            done = not batch and self._all_caught_up() and not self._buffers.holding()
            self._ledger.set_caught_up(self._stream, self._index, done)
        if self._stop_at_end and not batch and self._ledger.all_caught_up(self._stream):
            # Stop together with the other partitions of this process (a shard created by a reshard may
            # belong to any of them), after one last listing so a reshard that happened just now is seen.
            self._discover()
            if self._all_caught_up():
                log.info("kinesis.caught_up partition=%d shards=%d", self._index, len(self._positions))
                self._finished = True
                raise StopIteration
        return batch

    def next_awake(self) -> datetime | None:
        """At most EPOCH_WAKE_S away: Bytewax ends a partition's epoch only when it activates this worker's source
        (at its partitions' earliest next_awake), and an epoch closes once every worker passed it. A worker whose
        partitions own no shard slept until the next listing (30 s) and held every checkpoint of the cluster."""
        now = self._last_batch_at  # relative to the last batch: the same answer however often it is asked
        times = [now + timedelta(seconds=EPOCH_WAKE_S)]
        if self._hold.held:
            return min(*times, now + timedelta(seconds=self._hold.wait_s))
        times += [r.next_poll for r in self._readers.values()]
        times.append(self._next_discovery)
        if self._stop_at_end and self._all_caught_up():
            # Nothing left here, but the process ends only when every partition is caught up: look again
            # soon rather than at the next discovery (a partition with no shard would wait for it).
            times.append(now + timedelta(seconds=self._poll_s))
        return min(times)

    def snapshot(self) -> ShardPositions:
        self._snapshotted = True
        state = dict(self._positions)
        if self._job_start is not None and self._start.kind == "LATEST":
            state[JOB_START] = f"ts:{self._job_start.isoformat()}"
        return state
