"""The init step: make this pod's directory hold exactly its partitions, at their newest known progress.

Run by the pod's init container before the dataflow starts (`python -m dataflow.recovery restore`). The first
pod 0 ever to start creates the set and stores it (every object created with `If-None-Match: *`, the manifest
last: its presence means the set is complete); other pods wait for the manifest. A store holding partitions but
no manifest is refused, never created again over them. Then every pod follows `layout.plan`: fetch what it owns
from the store unless it still has its own (a pod whose directory outlived it) *and* the store still holds the
version that file descends from (held.py; otherwise the store's was replaced, and wins), drop what it no longer
owns. A file replaced or dropped goes with its `-wal` and `-shm`: SQLite would replay a stale WAL onto it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from dataflow.recovery import held as held_state
from dataflow.recovery.frontier import UNKNOWN
from dataflow.recovery.held import Held
from dataflow.recovery.layout import LayoutError, Plan, plan
from dataflow.recovery.partition_file import (
    PartitionFileError,
    PartitionInfo,
    Rows,
    create_set,
    digest,
    file_name,
    index_of,
    read_info,
)
from dataflow.recovery.store import Manifest, Store, StoredCopy
from dataflow.settings import RecoverySettings

log = logging.getLogger(__name__)


def local_partitions(directory: Path) -> dict[int, PartitionInfo]:
    found: dict[int, PartitionInfo] = {}
    for path in sorted(directory.glob("part-*.sqlite3")):
        index = index_of(path)
        if index is None:
            raise LayoutError(f"recovery.foreign_file {path}: not named part-<index>.sqlite3; delete it")
        try:
            found[index] = read_info(path)
        except PartitionFileError as err:
            raise LayoutError(f"recovery.unreadable_partition {err}: delete it (the store holds the set)") from err
    return found


def remove(path: Path) -> None:
    """A partition file and SQLite's files beside it."""
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        (path.parent / name).unlink(missing_ok=True)


def create(store: Store, count: int, scratch: Path) -> Manifest:
    """Create a fresh set, store every partition, then the manifest."""
    existing = sorted(store.copies(count))
    if existing:
        raise LayoutError(
            f"recovery.manifest_missing store={store.url} holds partitions {existing} but no manifest.json: restore "
            'manifest.json from its previous version (or write {"partitions": N}); creating the set again would '
            "overwrite them"
        )
    create_set(scratch, count)
    for index in range(count):
        path = scratch / file_name(index)
        store.upload(index, path, StoredCopy(as_of=UNKNOWN, digest=digest(path), rows=Rows()), None)
        (scratch / file_name(index)).unlink()
    manifest = Manifest(partitions=count)
    store.write_manifest(manifest)
    log.info("recovery.created store=%s partitions=%d", store.url, count)
    return manifest


def wait_for_manifest(
    store: Store,
    wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Manifest:
    deadline = clock() + wait_s
    while True:
        manifest = store.manifest()
        if manifest is not None:
            return manifest
        if clock() >= deadline:
            raise LayoutError(
                f"recovery.no_manifest store={store.url} has no partition set after {wait_s:.0f} s: pod 0 creates "
                "it on the first start; check pod 0's init container"
            )
        sleep(1.0)


def fetch(store: Store, directory: Path, index: int, count: int) -> StoredCopy:
    """Fetch the store's copy of partition `index` over the local file; returns the copy's metadata and ETag."""
    partial = directory / f".fetch-{index}.tmp"
    copy = store.download(index, partial)
    try:
        info = read_info(partial)
    except PartitionFileError as err:
        partial.unlink(missing_ok=True)
        raise LayoutError(f"recovery.unreadable_stored_partition {store.url}/{file_name(index)}: {err}") from err
    if (info.index, info.count) != (index, count):
        partial.unlink(missing_ok=True)
        raise LayoutError(
            f"recovery.wrong_stored_partition {store.url}/{file_name(index)} holds partition {info.index} of "
            f"{info.count}, not {index} of {count}"
        )
    remove(directory / file_name(index))  # with its WAL: replayed onto the fetched file, it would corrupt it
    partial.replace(directory / file_name(index))
    return copy


def restore(settings: RecoverySettings, store: Store, sleep: Callable[[float], None] = time.sleep) -> Plan:
    directory = Path(settings.directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = store.manifest()
    if manifest is None:
        if settings.ordinal == 0:
            scratch = directory.parent / f".{directory.name}.new"
            manifest = create(store, settings.partitions, scratch)
            scratch.rmdir()
        else:
            manifest = wait_for_manifest(store, settings.wait_s, sleep)
    stored = store.copies(max(manifest.partitions, settings.partitions))
    local = local_partitions(directory)
    steps = plan(
        ordinal=settings.ordinal,
        replicas=settings.replicas,
        count=settings.partitions,
        manifest=manifest,
        stored=stored,
        local=local,
        store_url=store.url,
    )
    held = held_state.load(directory)
    replaced = [i for i in steps.keep if i not in held or held[i].etag != stored[i].etag]
    if replaced:
        steps.keep = [i for i in steps.keep if i not in replaced]
        steps.fetch = sorted(steps.fetch + replaced)
        log.warning("recovery.replaced_in_store partitions=%s: fetched again, the store's copy wins", replaced)
    for index in steps.drop:
        remove(directory / file_name(index))
        held.pop(index, None)
    for index in steps.fetch:
        copy = fetch(store, directory, index, settings.partitions)
        held[index] = Held(etag=copy.etag, as_of=copy.as_of, digest=copy.digest)
    held_state.save(directory, {i: h for i, h in held.items() if i in steps.fetch or i in steps.keep})
    log.info(
        "recovery.restored store=%s ordinal=%d replicas=%d partitions=%s fetched=%s kept=%s dropped=%s as_of=%s",
        store.url,
        settings.ordinal,
        settings.replicas,
        sorted(steps.fetch + steps.keep),
        steps.fetch,
        steps.keep,
        steps.drop,
        {i: stored[i].as_of for i in sorted(steps.fetch)},
    )
    return steps
