"""dataflow/recovery: the layout, the lower bound of the set's epoch, the cut, and the store against moto's S3
(protocol properties: test_protocol.py)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dataflow.recovery.align import align
from dataflow.recovery.backup import Backup
from dataflow.recovery.cut import cut
from dataflow.recovery.frontier import UNKNOWN, lower_bound
from dataflow.recovery.held import Held
from dataflow.recovery.layout import LayoutError, owned, plan
from dataflow.recovery.partition_file import PartitionInfo, Rows, create_set, file_name, read_info
from dataflow.recovery.restore import restore
from dataflow.recovery.store import Fenced, Manifest, Store, StoredCopy
from dataflow.settings import RecoverySettings, SettingsError, load_recovery_settings


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5])
def test_every_partition_is_owned_exactly_once(replicas: int) -> None:
    spread = [i for ordinal in range(replicas) for i in owned(ordinal, replicas, 8)]
    assert sorted(spread) == list(range(8))


def copies(count: int, as_of: int = 5) -> dict[int, StoredCopy]:
    return {i: StoredCopy(as_of=as_of, digest="d", rows=Rows()) for i in range(count)}


def test_plan_fetches_what_is_missing_keeps_what_is_there_and_drops_the_rest() -> None:
    local = {i: PartitionInfo(index=i, count=6) for i in (0, 1, 3)}
    steps = plan(
        ordinal=0, replicas=2, count=6, manifest=Manifest(6), stored=copies(6), local=local, store_url="s3://b"
    )
    assert (steps.keep, steps.fetch, steps.drop) == ([0], [2, 4], [1, 3])


def test_plan_refuses_a_changed_count_a_missing_partition_and_a_foreign_file() -> None:
    with pytest.raises(LayoutError, match=r"RECOVERY_PARTITIONS=8.*set it back to 6"):
        plan(ordinal=0, replicas=1, count=8, manifest=Manifest(6), stored=copies(6), local={}, store_url="s3://b")
    stored = copies(6)
    del stored[4]
    with pytest.raises(LayoutError, match=r"lacks partitions \[4\] of 6"):
        plan(ordinal=0, replicas=1, count=6, manifest=Manifest(6), stored=stored, local={}, store_url="s3://b")
    foreign = {0: PartitionInfo(index=0, count=4)}
    with pytest.raises(LayoutError, match="another size"):
        plan(ordinal=0, replicas=1, count=6, manifest=Manifest(6), stored=copies(6), local=foreign, store_url="s3://b")


def test_lower_bound_is_the_smallest_frontier_of_the_newest_fully_known_execution() -> None:
    assert lower_bound([]) == UNKNOWN
    # Execution 1 of two workers resumed at 10; worker 0 reached 14, worker 1 is only known by its default.
    rows = [Rows(exs=((1, 2, 10),)), Rows(fronts=((1, 0, 14),)), Rows(fronts=((1, 1, 12),))]
    assert lower_bound(rows) == 12
    assert lower_bound(rows[:2]) == 10  # worker 1's frontier unknown: it stands at the resume epoch
    # Fronts of an execution whose row is not at hand do not count; an older complete one still does.
    assert lower_bound([Rows(exs=((0, 1, 0),), fronts=((0, 0, 7), (2, 0, 30)))]) == 7
    # As Bytewax reads it: the newest execution only, however far an older one got (a cut left it behind).
    assert lower_bound([Rows(exs=((0, 1, 1), (1, 1, 5)), fronts=((0, 0, 40),))]) == 5
    assert lower_bound([Rows(exs=((0, 1, 1), (1, 1, 5)), fronts=((0, 0, 40),))], execution=2) == UNKNOWN


def partition_with(tmp_path: Path, exs: list[tuple], fronts: list[tuple], commit: int | None = None) -> Path:
    create_set(tmp_path, 1)
    path = tmp_path / file_name(0)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)", exs)
        conn.executemany("INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?)", fronts)
        conn.execute("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES ('s', 'k', 9, NULL)")
        if commit is not None:
            conn.execute("INSERT INTO commits (part_index, commit_epoch) VALUES (0, ?)", (commit,))
    return path


def snaps(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as conn:
        return [e for (e,) in conn.execute("SELECT snap_epoch FROM snaps ORDER BY snap_epoch")]


def test_cut_lowers_frontiers_and_resume_epochs_and_drops_snapshots_at_or_above_it(tmp_path: Path) -> None:
    path = partition_with(tmp_path, [(1, 2, 12)], [(1, 0, 20), (1, 1, 15)], commit=3)
    assert cut(path, 14, marker=None)
    rows = read_info(path).rows
    assert rows.fronts == ((1, 0, 14), (1, 1, 14)) and rows.exs == ((1, 2, 12),)
    assert not cut(path, 14, marker=None)
    assert cut(path, 11, marker=None) and read_info(path).rows.exs == ((1, 2, 11),)
    assert snaps(path) == [9]
    assert cut(path, 9, marker=None) and snaps(path) == [], "Bytewax loads below R: a snapshot at R is the old run's"


def test_cut_writes_the_marker_execution_into_partition_0_and_drops_unagreed_executions(tmp_path: Path) -> None:
    path = partition_with(tmp_path, [(1, 1, 3), (2, 1, 12)], [(1, 0, 12), (2, 0, 20)])
    assert cut(path, 10, marker=2)  # execution 2 never reached the store: the agreement did not see it
    assert read_info(path).rows == Rows(exs=((1, 1, 3), (2, 1, 10)), fronts=((1, 0, 10),))
    assert lower_bound([read_info(path).rows]) == 10, "Bytewax resumes at exactly R from the marker"


def test_cut_at_or_below_the_garbage_collected_epoch_is_refused(tmp_path: Path) -> None:
    path = partition_with(tmp_path, [(1, 1, 0)], [(1, 0, 40)], commit=30)
    with pytest.raises(LayoutError, match="garbage-collected up to epoch 30"):
        cut(path, 20, marker=None)
    with pytest.raises(LayoutError, match="garbage-collected up to epoch 30"):
        cut(path, 30, marker=None)  # a commit at R kept only the snapshot at R, which a resume at R does not load
    assert cut(path, 31, marker=None)


def settings_for(tmp_path: Path, ordinal: int, replicas: int, partitions: int = 4) -> RecoverySettings:
    return RecoverySettings(
        store_url="s3://state/app",
        directory=str(tmp_path / f"pod{ordinal}"),
        partitions=partitions,
        replicas=replicas,
        ordinal=ordinal,
        wait_s=0.0,
    )


@pytest.fixture()
def store() -> Store:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="state")
        yield Store("state", "app", client)


def test_first_start_creates_the_set_once_and_a_rescale_moves_partitions(tmp_path: Path, store: Store) -> None:
    with pytest.raises(LayoutError, match="no partition set"):
        restore(settings_for(tmp_path, 1, 2), store, sleep=lambda _s: None)
    first = restore(settings_for(tmp_path, 0, 2), store)
    assert first.fetch == [0, 2] and store.manifest() == Manifest(4)
    assert restore(settings_for(tmp_path, 1, 2), store).fetch == [1, 3]
    again = restore(settings_for(tmp_path, 0, 2), store)  # a pod whose directory outlived it keeps its files
    assert again.keep == [0, 2] and again.fetch == []
    solo = restore(settings_for(tmp_path, 0, 1), store)  # 2 -> 1: pod 0 takes the whole set
    assert solo.keep == [0, 2] and solo.fetch == [1, 3]
    assert sorted(p.name for p in (tmp_path / "pod0").glob("*.sqlite3")) == [file_name(i) for i in range(4)]
    with pytest.raises(LayoutError, match="RECOVERY_PARTITIONS=6"):
        restore(settings_for(tmp_path, 0, 1, partitions=6), store)


def write_rows(path: Path, exs: list[tuple] = (), fronts: list[tuple] = ()) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany("INSERT OR REPLACE INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)", exs)
        conn.executemany(
            "INSERT OR REPLACE INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?)", fronts
        )


def test_backup_vouches_only_with_the_running_execution_and_align_agrees_once(tmp_path: Path, store: Store) -> None:
    restore(settings_for(tmp_path, 0, 2), store)
    restore(settings_for(tmp_path, 1, 2), store)
    pod0, pod1 = tmp_path / "pod0", tmp_path / "pod1"
    b0, b1 = Backup(pod0, store, 4), Backup(pod1, store, 4)
    first = align(b0, 0, wait_s=0, settle_s=0, sleep=lambda _s: None)
    assert (first.resume.epoch, first.resume.running) == (UNKNOWN, 0), "a set that never progressed starts over"
    assert align(b1, 1, wait_s=0, sleep=lambda _s: None).resume == first.resume
    # Execution 0 runs: its row lands in partition 0 (pod 0), worker 1's frontier in partition 1 (pod 1).
    write_rows(pod0 / file_name(0), exs=[(0, 2, 1)], fronts=[(0, 0, 9)])
    write_rows(pod1 / file_name(1), fronts=[(0, 1, 6)])
    assert b1.run_once() == 0, "nothing of the running execution known yet: nothing is stored"
    assert b0.run_once() == 2 and store.copy(0).as_of == 1  # worker 1 only known by the resume epoch
    assert b1.run_once() == 2 and store.copy(1).as_of == 6 and store.copy(1).start == first.resume.start
    assert b0.run_once() == 2 and store.copy(2).as_of == 6, "an idle partition's as-of moves with the run"
    assert b0.run_once() == 0
    # A stale writer (the store's object was written since it last looked) is refused.
    stale = Backup(pod1, store, 4)
    stale.begin(first.resume, {1: Held(etag=b1.held[1].etag, as_of=6, digest="")})
    stale.confirmed = True
    write_rows(pod1 / file_name(1), fronts=[(0, 1, 7)])
    assert b1.run_once() == 2
    with pytest.raises(Fenced, match=r"recovery[.]fenced"):
        stale.run_once()
    # The next start: pod 0 decides R = 6 from the copies, both pods cut to it, partition 0 carries the marker.
    second = align(b0, 0, wait_s=0, settle_s=0, sleep=lambda _s: None)
    assert (second.resume.start, second.resume.epoch, second.resume.marker) == (1, 6, 1)
    assert align(b1, 1, wait_s=0, sleep=lambda _s: None).resume == second.resume
    assert read_info(pod0 / file_name(0)).rows == Rows(exs=((0, 2, 1), (1, 1, 6)), fronts=((0, 0, 6),))
    assert read_info(pod1 / file_name(1)).rows.fronts == ((0, 1, 6),)


def test_a_peer_waits_for_the_record_of_this_start_and_refuses_without_it(tmp_path: Path, store: Store) -> None:
    restore(settings_for(tmp_path, 0, 2), store)
    restore(settings_for(tmp_path, 1, 2), store)
    b0, b1 = Backup(tmp_path / "pod0", store, 4), Backup(tmp_path / "pod1", store, 4)
    with pytest.raises(LayoutError, match=r"recovery[.]no_resume_epoch"):
        align(b1, 1, wait_s=0, sleep=lambda _s: None)
    record = align(b0, 0, wait_s=0, settle_s=0, sleep=lambda _s: None).resume
    assert align(b1, 1, wait_s=0, sleep=lambda _s: None).resume == record
    write_rows(tmp_path / "pod0" / file_name(0), exs=[(0, 2, 1)], fronts=[(0, 0, 3), (0, 1, 3)])
    assert b0.run_once() == 2 and b1.run_once() == 2  # start 0's run wrote copies: its record is spent
    with pytest.raises(LayoutError, match=r"recovery[.]no_resume_epoch"):
        align(b1, 1, wait_s=0, sleep=lambda _s: None)
    assert align(b0, 0, wait_s=0, settle_s=0, sleep=lambda _s: None).resume.start == record.start + 1
    assert align(b1, 1, wait_s=0, sleep=lambda _s: None).resume.start == record.start + 1


def test_the_store_fences_every_write(store: Store, tmp_path: Path) -> None:
    """moto 5.2.6 honours If-None-Match: * and If-Match on PutObject (412; If-Match on a missing key: 404)."""
    source = tmp_path / "f"
    source.write_bytes(b"x")
    meta = StoredCopy(as_of=1, digest="d", rows=Rows())
    etag = store.upload(0, source, meta, None)
    with pytest.raises(Fenced):
        store.upload(0, source, meta, None)
    source.write_bytes(b"y")
    newer = store.upload(0, source, meta, etag)
    with pytest.raises(Fenced):
        store.upload(0, source, meta, etag)  # what this pod wrote was replaced
    with pytest.raises(Fenced):
        store.upload(1, source, meta, newer)  # If-Match on an object that does not exist
    store.write_manifest(Manifest(4))
    with pytest.raises(Fenced):
        store.write_manifest(Manifest(4))


def test_restore_refuses_to_recreate_over_partitions_and_refetches_a_replaced_kept_file(
    tmp_path: Path, store: Store
) -> None:
    restore(settings_for(tmp_path, 0, 1), store)
    pod0 = tmp_path / "pod0"
    (pod0 / f"{file_name(2)}-wal").write_bytes(b"stale")
    other = tmp_path / "other"
    other.mkdir()
    store.download(2, other / "p2")
    write_rows(other / "p2", exs=[(0, 1, 4)])
    store.upload(2, other / "p2", StoredCopy(as_of=4, digest="d", rows=Rows()), store.copy(2).etag)
    again = restore(settings_for(tmp_path, 0, 1), store)
    assert again.fetch == [2] and again.keep == [0, 1, 3], "the store's replaced object wins over the kept file"
    assert read_info(pod0 / file_name(2)).rows.exs == ((0, 1, 4),)
    wal = pod0 / f"{file_name(2)}-wal"
    assert not wal.exists() or wal.read_bytes() != b"stale", "a stale WAL would be replayed onto the fetched file"
    store.client.delete_object(Bucket="state", Key="app/manifest.json")
    with pytest.raises(LayoutError, match=r"recovery[.]manifest_missing"):
        restore(settings_for(tmp_path / "fresh", 0, 1), store)


def test_recovery_settings_from_the_pod(tmp_path: Path) -> None:
    env = {
        "RECOVERY_STORE_URL": "s3://bucket-1/prefix/app",
        "RECOVERY_DIR": str(tmp_path),
        "BYTEWAX_REPLICAS": "3",
        "BYTEWAX_POD_NAME": "reviewstream-dataflow-2",
        "RECOVERY_SNAPSHOT_INTERVAL_S": "30",
        "RECOVERY_RETAIN_S": "1800",
    }
    s = load_recovery_settings(env)
    assert (s.bucket, s.prefix, s.ordinal, s.replicas) == ("bucket-1", "prefix/app", 2, 3)
    assert s.bytewax_args() == ["-r", str(tmp_path), "-s", "30", "-b", "1800"]
    with pytest.raises(SettingsError, match="not below BYTEWAX_REPLICAS=2"):
        load_recovery_settings({**env, "BYTEWAX_REPLICAS": "2"})
    with pytest.raises(SettingsError, match="RECOVERY_STORE_URL"):
        load_recovery_settings({**env, "RECOVERY_STORE_URL": "/var/recovery"})
    with pytest.raises(SettingsError, match="exceeds RECOVERY_PARTITIONS=2"):
        load_recovery_settings({**env, "RECOVERY_PARTITIONS": "2"})
