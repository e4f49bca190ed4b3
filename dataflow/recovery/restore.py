"""The init step: make this pod's directory hold exactly its partitions, at their newest known progress.

Run by the pod's init container before the dataflow starts (`python -m dataflow.recovery restore`). The first
pod 0 ever to start creates the set and stores it (the manifest last: its presence means the set is complete);
other pods wait for the manifest. Then every pod follows `layout.plan`: fetch what it owns from the store
unless it still has its own (a pod whose directory outlived it), drop what it no longer owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from dataflow.recovery.frontier import UNKNOWN
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


def create(store: Store, count: int, scratch: Path) -> Manifest:
    """Create a fresh set, store every partition, then the manifest."""
    create_set(scratch, count)
    for index in range(count):
        path = scratch / file_name(index)
        store.upload(index, path, StoredCopy(as_of=UNKNOWN, digest=digest(path), rows=Rows()))
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


def fetch(store: Store, directory: Path, index: int, count: int) -> PartitionInfo:
    partial = directory / f".fetch-{index}.tmp"
    store.download(index, partial)
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
    partial.replace(directory / file_name(index))  # atomic: Bytewax never sees half a file
    return info


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
    for index in steps.drop:
        (directory / file_name(index)).unlink()
    for index in steps.fetch:
        fetch(store, directory, index, settings.partitions)
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
