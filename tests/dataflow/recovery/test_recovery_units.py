"""dataflow/recovery: the layout, the lower bound of the set's epoch, the cut, and the store against moto's S3."""

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
from dataflow.recovery.layout import LayoutError, owned, plan
from dataflow.recovery.partition_file import PartitionInfo, Rows, create_set, file_name, read_info
from dataflow.recovery.restore import restore
from dataflow.recovery.store import Manifest, Store, StoredCopy
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


def test_cut_lowers_frontiers_and_resume_epochs_and_keeps_snapshots(tmp_path: Path) -> None:
    path = partition_with(tmp_path, [(1, 2, 12)], [(1, 0, 20), (1, 1, 15)], commit=3)
    assert cut(path, 14)
    rows = read_info(path).rows
    assert rows.fronts == ((1, 0, 14), (1, 1, 14)) and rows.exs == ((1, 2, 12),)
    assert not cut(path, 14)
    assert cut(path, 11) and read_info(path).rows.exs == ((1, 2, 11),)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM snaps").fetchone()[0] == 1


def test_cut_below_the_garbage_collected_epoch_is_refused(tmp_path: Path) -> None:
    path = partition_with(tmp_path, [(1, 1, 0)], [(1, 0, 40)], commit=30)
    with pytest.raises(LayoutError, match="garbage-collected up to epoch 30"):
        cut(path, 20)


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


def test_backup_stores_as_of_and_align_cuts_to_the_oldest_copy(tmp_path: Path, store: Store) -> None:
    restore(settings_for(tmp_path, 0, 2), store)
    restore(settings_for(tmp_path, 1, 2), store)
    pod0, pod1 = tmp_path / "pod0", tmp_path / "pod1"
    with closing(sqlite3.connect(pod0 / file_name(0))) as conn, conn:
        conn.execute("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (0, 2, 1)")
        conn.execute("INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (0, 0, 9)")
    with closing(sqlite3.connect(pod1 / file_name(1))) as conn, conn:
        conn.execute("INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (0, 1, 6)")
    # Pod 1 stores first: it sees no execution row yet, so its copies are as-of UNKNOWN ...
    b1 = Backup(pod1, store, 4)
    assert b1.run_once() == 2 and store.copy(1).as_of == UNKNOWN
    b0 = Backup(pod0, store, 4)
    assert b0.changed(), "the first look sees the files"
    assert b0.run_once() == 2 and store.copy(0).as_of == 6  # pod 0 knows worker 1 from the store's rows
    assert not b0.changed(), "copying is not writing: the loop waits for the next snapshot"
    assert b0.run_once() == 0  # nothing changed: nothing stored
    assert b1.run_once() == 2 and store.copy(1).as_of == 6  # ... and stores them again once the epoch is known
    # Worker 0 moved on to 12 in pod 0's file; pod 1's copies are only as-of 6: pod 0 cuts its rows to 6.
    with closing(sqlite3.connect(pod0 / file_name(0))) as conn, conn:
        conn.execute("UPDATE fronts SET worker_frontier = 12 WHERE worker_index = 0")
    assert b0.changed(), "a snapshot written is seen at the next look"
    result = align(b0, wait_s=0.0)
    assert result.epoch == 6 and result.moved == [0]
    assert read_info(pod0 / file_name(0)).rows.fronts == ((0, 0, 6),)


def test_recovery_settings_from_the_pod(tmp_path: Path) -> None:
    env = {
        "RECOVERY_STORE_URL": "s3://bucket-1/prefix/app",
        "RECOVERY_DIR": str(tmp_path),
        "BYTEWAX_REPLICAS": "3",
        "BYTEWAX_POD_NAME": "reviewstream-dataflow-2",
        "RECOVERY_SNAPSHOT_INTERVAL_S": "30",
        "RECOVERY_RETAIN_S": "300",
    }
    s = load_recovery_settings(env)
    assert (s.bucket, s.prefix, s.ordinal, s.replicas) == ("bucket-1", "prefix/app", 2, 3)
    assert s.bytewax_args() == ["-r", str(tmp_path), "-s", "30", "-b", "300"]
    with pytest.raises(SettingsError, match="not below BYTEWAX_REPLICAS=2"):
        load_recovery_settings({**env, "BYTEWAX_REPLICAS": "2"})
    with pytest.raises(SettingsError, match="RECOVERY_STORE_URL"):
        load_recovery_settings({**env, "RECOVERY_STORE_URL": "/var/recovery"})
    with pytest.raises(SettingsError, match="exceeds RECOVERY_PARTITIONS=2"):
        load_recovery_settings({**env, "RECOVERY_PARTITIONS": "2"})
