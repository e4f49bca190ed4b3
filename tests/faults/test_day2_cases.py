"""Day 2's hard cases for the recovery store (issue 26), with the containers' own scripts (tests/faults/pods.py).

- A pod lost right after Bytewax wrote a snapshot into its partition and moved the frontier past it, before that
  snapshot reached the store: the replacement must resume from what the store holds, not claim the lost epoch.
- A stale pod (a partitioned node) that keeps running beside its replacement: its next write is refused (412
  from the local S3), it exits 4 with `recovery.fenced`, and the replacement's cluster loses nothing.
- docs/DEPLOY.md "Restore a partition", played with the operator's S3 calls on a versioned bucket: one older
  version rolls the whole set back (every review after its as-of read again, under the same `_id`); too old, the
  start is refused (`recovery.cut_too_far`); then the whole set as of one moment works; a deleted manifest is
  refused and restored the same way.

The loss and the stale pod are placed by observing real state, not by timing: the pod's supervisor is stopped
(SIGSTOP: its uploads stall, as on a node cut off from S3, while its Bytewax process goes on), and the test reads
the pod's partition files until one holds an input snapshot that its stored copy lacks, with the cluster's
frontier past it.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dataflow.recovery.frontier import lower_bound
from dataflow.recovery.partition_file import file_name, read_info
from dataflow.recovery.store import MANIFEST, Store
from infra.config import StackConfig as InfraConfig
from infra.workload import APP
from tests.faults.accounting import answered_again, bedrock_answered, check_accounting, kill_group, synthetic_ids
from tests.faults.pods import Cluster, Progress, pod_template, recovery_bucket
from tests.plugins.stack import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 6
REPLICAS = 2
WORKERS = InfraConfig.dataflow_workers_per_process  # the deployment's shape: 2 pods x 2 workers
SNAPSHOT_S = 1.0
PER_PHASE = 40
INPUT_STEP = "reviewstream.kinesis"  # the source's state: each shard's position
RESUME_LAG_INTERVALS = 5  # see test_day2.py


@dataclass
class Scenario:
    """One bucket, one stream, the reviews produced and what the model enriched, and every pod started."""

    pipeline: Pipeline
    root: Path
    s3: Any
    bucket: str
    store: Store
    template: dict[str, str]
    enriched: Progress
    produced: set[str] = field(default_factory=set)
    batches: list[tuple[float, set[str]]] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    strays: list[Any] = field(default_factory=list)  # pods' processes no cluster holds any more
    seed: int = 300
    lock: threading.Lock = field(default_factory=threading.Lock)

    def produce(self, count: int) -> None:
        with self.lock:
            self.seed += 1
            mine = self.seed
        at = time.monotonic()
        self.pipeline.produce(count, seed=mine)
        with self.lock:
            self.batches.append((at, synthetic_ids(count, mine)))
            self.produced.update(synthetic_ids(count, mine))

    def produce_steadily(self, count: int, batch: int = 5, pause_s: float = 0.2) -> threading.Thread:
        """Reviews arriving while the cluster runs (and while it restarts), read over many epochs."""

        def run() -> None:
            for _ in range(count // batch):
                self.produce(batch)
                time.sleep(pause_s)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def mid_stream(self, cluster: Cluster) -> None:
        """A part of the steady reviews indexed, and copies that vouch past the start's R."""
        part = self.pipeline.count() + PER_PHASE // 2
        self.pipeline.wait_for(lambda: self.pipeline.count() >= part, timeout=120, what="a part of the reviews")
        self.pipeline.wait_for(self.vouches_past_the_start, timeout=60, what="copies that vouch past the start's R")

    def cluster(self, replicas: int, **changes: str) -> Cluster:
        cluster = Cluster(self.pipeline, self.root, replicas, {**self.template, **changes}, len(self.clusters) + 1)
        self.clusters.append(cluster)
        cluster.init()
        cluster.start()
        return cluster

    def all_indexed(self, cluster: Cluster, what: str) -> None:
        def done() -> bool:
            assert all(p.poll() is None for p in cluster.procs.values()), f"a pod ended: {cluster.logs()[-4000:]}"
            return self.pipeline.count() >= len(self.produced)

        self.pipeline.wait_for(done, timeout=180, what=what)

    def stored_as_of(self) -> int:
        return min((c.as_of for c in self.store.copies(PARTITIONS).values()), default=-1)

    def vouches_past_the_start(self) -> bool:
        """The copies claim a few epochs past this start's R (before that a crash re-reads the start, by design)."""
        got = self.store.read_resume()
        return got is not None and self.stored_as_of() > got[0]["epoch"] + 3

    def store_catches_up(self) -> None:
        then = self.stored_as_of()
        self.pipeline.wait_for(lambda: self.stored_as_of() > then + 3, timeout=60, what=f"the store past {then} + 3")

    def resume_epoch(self) -> int:
        got = self.store.read_resume()
        assert got is not None
        return int(got[0]["epoch"])

    def may_repeat_now(self, stalled_at: float) -> set[str]:
        """What a restart now may ask the model for again, review by review (test_day2.py `Crash`: three intervals
        are Bytewax's, two the store's lag): every review answered since RESUME_LAG_INTERVALS before the oldest
        review not indexed yet or before a pod's uploads stalled (`stalled_at`, monotonic), whichever came first:
        the store vouches for nothing after that."""
        indexed = set(self.pipeline.ids())
        with self.lock:
            waiting = [at for at, ids in self.batches if ids - indexed]
        return self.answered_since(min([*waiting, stalled_at]) - RESUME_LAG_INTERVALS * SNAPSHOT_S)

    def answered_since(self, at: float) -> set[str]:
        """The reviews (text fingerprints) the model answered at or after `at` (monotonic)."""
        return {print_ for when, print_ in bedrock_answered(self.pipeline) if when >= at}

    def asked_again(self, at: float) -> list[str]:
        """Each answer given at or after `at` to a review the model had answered before: a review asked for
        twice more shows twice."""
        return [print_ for when, print_ in answered_again(bedrock_answered(self.pipeline)) if when >= at]

    def stop(self, cluster: Cluster) -> None:
        codes = cluster.stop()
        assert codes == [0] * len(codes), f"a clean stop: {codes}\n{cluster.logs()[-4000:]}"


@pytest.fixture()
def scenario(faulty: Pipeline, tmp_path: Path) -> Iterator[Scenario]:
    s3, bucket, store = recovery_bucket(faulty, versioned=True)
    faulty.bedrock_config(latency_mean_ms=20, latency_distribution="exponential", seed=26)
    template = pod_template(faulty, bucket, PARTITIONS, SNAPSHOT_S, WORKERS)
    running = Scenario(faulty, tmp_path, s3, bucket, store, template, Progress(faulty))
    try:
        yield running
    finally:
        for proc in running.strays:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)
            kill_group(proc)
        for cluster in running.clusters:
            cluster.kill_all()


Snapshots = dict[tuple[str, str, int], bytes | None]  # (step, key, epoch) -> the serialized state


def snapshots(path: Path) -> Snapshots:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT step_id, state_key, snap_epoch, ser_change FROM snaps")
        return {(s, k, e): v for s, k, e, v in rows}


def moved(snaps: Snapshots, held: Snapshots, frontier: int) -> list[int]:
    """Epochs of input snapshots in `snaps` but not `held`, below `frontier`, whose shard position differs from
    the latest one `held` has for the shard: reviews read in an epoch the store does not hold."""
    epochs = []
    for (step, key, epoch), state in snaps.items():
        if step != INPUT_STEP or epoch >= frontier or (step, key, epoch) in held:
            continue
        before = [e for s, k, e in held if (s, k) == (step, key) and e < epoch]
        if not before or held[(step, key, max(before))] != state:
            epochs.append(epoch)
    return epochs


@dataclass(frozen=True)
class Unstored:
    partition: int
    epoch: int  # of the newest input snapshot the store's copy lacks
    stored_as_of: int  # the store's copy of the partition: what it vouches for


def snapshot_past_the_store(sc: Scenario, cluster: Cluster, ordinal: int) -> Unstored:
    """Wait (the pod's supervisor stopped) until one of its partitions holds an input snapshot, of a shard that
    moved, at an epoch its stored copy lacks, and every worker's frontier is past it (read from every pod's
    files): Bytewax wrote it and moved on, the store never got it."""
    time.sleep(0.5)  # an upload the stop caught on the wire lands
    held: dict[int, Snapshots] = {}
    stored: dict[int, int] = {}
    for index in range(ordinal, PARTITIONS, cluster.replicas):
        target = sc.root / f".stored-{index}"
        stored[index] = sc.store.download(index, target).as_of
        held[index] = snapshots(target)
        target.unlink()
    found: list[Unstored] = []

    def look() -> bool:
        try:
            frontier = lower_bound(
                read_info(path).rows
                for o in range(cluster.replicas)
                for path in cluster.directory(o).glob("part-*.sqlite3")
            )
            for index, theirs in held.items():
                epochs = moved(snapshots(cluster.directory(ordinal) / file_name(index)), theirs, frontier)
                if epochs:
                    found.append(Unstored(index, max(epochs), stored[index]))
                    return True
        except sqlite3.Error:
            pass  # Bytewax is writing: look again
        return False

    sc.pipeline.wait_for(look, timeout=60, what=f"a snapshot of pod {ordinal} that the store lacks")
    return found[0]


def test_lost_pod_right_after_a_snapshot(scenario: Scenario, record_property: Callable[[str, object], None]) -> None:
    sc = scenario
    cluster = sc.cluster(REPLICAS)
    sc.produce(PER_PHASE)
    sc.all_indexed(cluster, "the first reviews")
    producer = sc.produce_steadily(3 * PER_PHASE)
    sc.mid_stream(cluster)
    lost = 1
    os.kill(cluster.procs[lost].pid, signal.SIGSTOP)  # the supervisor: its uploads stall, its Bytewax goes on
    stalled_at = time.monotonic()
    unstored = snapshot_past_the_store(sc, cluster, lost)
    crashed_at = time.monotonic()
    kill_group(cluster.procs[lost])  # the node dies with its emptyDir
    shutil.rmtree(cluster.directory(lost))
    codes = cluster.wait_exit(timeout=60)
    sc.enriched.settle()
    may_repeat = sc.may_repeat_now(stalled_at)
    cluster.init(only=(lost,))
    cluster.start()
    producer.join()
    sc.all_indexed(cluster, "every review after the loss")
    resume = sc.resume_epoch()
    sc.store_catches_up()
    sc.stop(cluster)
    again = sc.asked_again(0.0)  # the first phase asked for nothing twice: every repeat is the loss's
    beyond = set(again) - may_repeat
    summary = (
        f"lost_after_snapshot {unstored} codes={codes} resumed_at={resume} re_read={len(again)} "
        f"may_repeat={len(may_repeat)} beyond={len(beyond)}"
    )
    check_accounting(sc.pipeline, sc.produced, "day2-lost-after-snapshot", record_property, summary)
    # The replacement resumes from what the store held: the snapshot it never stored is not claimed.
    assert resume <= unstored.stored_as_of <= unstored.epoch, summary
    assert sc.asked_again(crashed_at) == again, f"answered again before the loss: {summary}"
    assert not beyond, f"the restart asked again for reviews the store had vouched for: {summary}"
    assert len(again) == len(set(again)), f"the restart asked twice: {summary}"


def test_stale_pod_keeps_uploading_and_is_fenced(
    scenario: Scenario, record_property: Callable[[str, object], None]
) -> None:
    sc = scenario
    cluster = sc.cluster(REPLICAS)
    sc.produce(PER_PHASE)
    sc.all_indexed(cluster, "the first reviews")
    producer = sc.produce_steadily(3 * PER_PHASE)
    sc.mid_stream(cluster)
    # Pod 1's node is cut off: its uploads stall while its Bytewax writes on. Pod 0 loses its peer and its
    # container restarts in place; the node is force-deleted, and pod 1's replacement starts elsewhere.
    log = sc.root / f"gen{cluster.generation}-pod1-start{cluster.starts}.log"
    os.kill(cluster.procs[1].pid, signal.SIGSTOP)
    stalled_at = time.monotonic()
    unstored = snapshot_past_the_store(sc, cluster, 1)
    stale = cluster.replace(1)
    sc.strays.append(stale)
    crashed_at = time.monotonic()
    kill_group(cluster.procs[0])
    sc.enriched.settle()
    may_repeat = sc.may_repeat_now(stalled_at)
    first = sc.store.read_resume()
    assert first is not None
    cluster.init(only=(1,))
    cluster.start()

    def restarted() -> bool:
        got = sc.store.read_resume()
        return got is not None and got[0]["start"] > first[0]["start"] and sc.vouches_past_the_start()

    sc.pipeline.wait_for(restarted, timeout=60, what="the replacement's start, its copies past its R")
    start = sc.store.read_resume()
    producer.join()
    sc.all_indexed(cluster, "every review on the replacement's cluster")
    # The node comes back: the stale pod's next write is refused and it stops.
    os.kill(stale.pid, signal.SIGCONT)
    code = stale.wait(timeout=60)
    stale_log = log.read_text()
    after = {i: c for i, c in sc.store.copies(PARTITIONS).items() if i % REPLICAS == 1}
    sc.produce(PER_PHASE)
    sc.all_indexed(cluster, "reviews after the stale pod stopped")
    sc.store_catches_up()
    sc.stop(cluster)
    again = sc.asked_again(0.0)
    beyond = set(again) - may_repeat
    summary = (
        f"stale_pod {unstored} exit={code} start={start and start[0]['start']} re_read={len(again)} "
        f"may_repeat={len(may_repeat)} beyond={len(beyond)}"
    )
    check_accounting(sc.pipeline, sc.produced, "day2-stale-pod", record_property, summary)
    assert code == 4, f"{summary}\n{stale_log[-3000:]}"
    assert "recovery.fenced" in stale_log, stale_log[-3000:]
    assert start is not None and all(c.start >= start[0]["start"] for c in after.values()), f"stale won: {after}"
    assert sc.asked_again(crashed_at) == again, f"answered again before the crash: {summary}"
    assert not beyond, f"the restart asked again for reviews the store had vouched for: {summary}"
    assert len(again) == len(set(again)), f"the restart asked twice: {summary}"


def versions(sc: Scenario, name: str) -> list[dict[str, Any]]:
    """`aws s3api list-object-versions --prefix <key>`: the key's versions, newest first."""
    key = f"{APP}/{name}"
    listed = sc.s3.list_object_versions(Bucket=sc.bucket, Prefix=key).get("Versions", [])
    return sorted((v for v in listed if v["Key"] == key), key=lambda v: v["LastModified"], reverse=True)


def last_before(sc: Scenario, name: str, moment: datetime) -> dict[str, Any]:
    """The version an operator picks: the last one stored before `moment` (LastModified has whole seconds)."""
    return next(v for v in versions(sc, name) if v["LastModified"] < moment)


def copy_back(sc: Scenario, name: str, version: dict[str, Any]) -> int:
    """`aws s3api copy-object --copy-source '<bucket>/<key>?versionId=<id>'`; returns the version's as-of."""
    key = f"{APP}/{name}"
    source = {"Bucket": sc.bucket, "Key": key, "VersionId": version["VersionId"]}
    sc.s3.copy_object(Bucket=sc.bucket, Key=key, CopySource=source)
    return int(sc.s3.head_object(Bucket=sc.bucket, Key=key)["Metadata"].get("as-of", -1))


def a_moment() -> tuple[datetime, float]:
    """The next whole second (LastModified has whole seconds: it tells before from after exactly), reached;
    with the monotonic time then."""
    moment = math.ceil(time.time()) + 1
    time.sleep(moment - time.time())
    return datetime.fromtimestamp(moment, UTC), time.monotonic()


def test_restore_runbook(scenario: Scenario, record_property: Callable[[str, object], None]) -> None:
    sc = scenario
    cluster = sc.cluster(REPLICAS)
    first = 2 * PER_PHASE  # more than any slack below: a shard re-read from its start would show
    sc.produce(first)
    sc.all_indexed(cluster, "the first reviews")
    sc.store_catches_up()
    moment, at_moment = a_moment()
    after_moment = PER_PHASE
    sc.produce(after_moment)
    sc.all_indexed(cluster, "reviews after the moment")
    sc.store_catches_up()
    later, at_later = a_moment()  # the whole set is brought back as of this one, at the end
    sc.stop(cluster)  # scale to 0
    lag = RESUME_LAG_INTERVALS * SNAPSHOT_S
    read_after = sc.answered_since(at_moment)  # the reviews read after the moment: a rollback reads them again
    may_roll, may_later = sc.answered_since(at_moment - lag), sc.answered_since(at_later - lag)
    events: list[str] = []

    # Restore a partition: its last version before the moment, copied over its current object.
    restored = last_before(sc, file_name(3), moment)
    as_of = copy_back(sc, file_name(3), restored)
    before, rolled_at = sc.enriched.now(), time.monotonic()
    cluster = sc.cluster(REPLICAS, RECOVERY_RETAIN_S="8")  # scale back; a shorter -b makes "too old" come soon
    sc.pipeline.wait_for(
        lambda: sc.enriched.now() - before >= after_moment, timeout=90, what="every review after the as-of again"
    )
    assert sc.resume_epoch() == as_of, "the set resumes from the restored version's as-of"
    sc.all_indexed(cluster, "the rolled-back reviews")
    sc.store_catches_up()
    rolled = sc.asked_again(rolled_at)  # what a rollback to this as-of re-reads
    events.append(f"rollback as_of={as_of} re_read={len(rolled)} read_after={len(read_after)} may={len(may_roll)}")
    # Every review read after the moment is read again, and nothing the restored version vouched for, once each.
    assert len(read_after) == after_moment and read_after <= set(rolled) <= may_roll, events
    assert len(rolled) == len(set(rolled)), events
    run_at = time.monotonic()

    # Too old: the other partitions were garbage-collected past that version's as-of since.
    rolled_back_run = PER_PHASE
    producer = sc.produce_steadily(rolled_back_run)
    sc.pipeline.wait_for(lambda: sc.stored_as_of() > as_of + 8 / SNAPSHOT_S + 4, timeout=90, what="a commit past")
    producer.join()
    sc.all_indexed(cluster, "reviews of the rolled-back run")
    sc.store_catches_up()
    sc.stop(cluster)
    copy_back(sc, file_name(3), restored)
    refused = Cluster(sc.pipeline, sc.root, REPLICAS, sc.template, len(sc.clusters) + 1)
    sc.clusters.append(refused)
    refused.init()
    refused.start()
    sc.pipeline.wait_for(lambda: "recovery.cut_too_far" in refused.logs(), timeout=60, what="cut_too_far")
    codes = refused.wait_exit(timeout=20)  # a pod whose partitions all cut waits for its peers: stopped
    events.append(f"too_old codes={codes}")
    assert 2 in codes, events

    # A manifest deleted by mistake: refused, then restored the same way.
    sc.s3.delete_object(Bucket=sc.bucket, Key=f"{APP}/{MANIFEST}")
    lone = Cluster(sc.pipeline, sc.root, REPLICAS, sc.template, len(sc.clusters) + 1)
    sc.clusters.append(lone)
    assert lone.init(only=(0,), check=False) == [2]
    assert "recovery.manifest_missing" in lone.logs()
    copy_back(sc, MANIFEST, versions(sc, MANIFEST)[0])

    # The whole set as of one moment (the later one): each partition's last version before it. It is one
    # lineage: it resumes from its own oldest as-of, whatever the rolled-back and the refused starts cut to.
    set_as_of = [copy_back(sc, file_name(i), last_before(sc, file_name(i), later)) for i in range(PARTITIONS)]
    before, whole_at = sc.enriched.now(), time.monotonic()
    run = sc.answered_since(run_at) - set(sc.asked_again(run_at))  # the rolled-back run's reviews (new ones)
    cluster = sc.cluster(REPLICAS)
    sc.pipeline.wait_for(
        lambda: sc.enriched.now() - before >= rolled_back_run, timeout=90, what="the rolled-back run's reviews again"
    )
    resumed = sc.resume_epoch()
    sc.all_indexed(cluster, "the whole set's rollback")
    sc.store_catches_up()
    again = sc.asked_again(whole_at)
    sc.stop(cluster)
    bound = f"{len(may_later)}+{len(run)}"
    events.append(f"whole_set as_of={set_as_of} resumed_at={resumed} re_read={len(again)}/{bound}")
    summary = " ".join(events)
    check_accounting(sc.pipeline, sc.produced, "day2-restore-runbook", record_property, summary)
    assert resumed == min(set_as_of), summary
    # What was read after the later moment (the rolled-back run's reviews) is read again; no more than that and
    # what that moment's copies did not yet vouch for (a shard re-read from its start would add the first 80).
    assert len(run) == rolled_back_run and run <= set(again) <= run | may_later, summary
    assert len(again) == len(set(again)), summary
