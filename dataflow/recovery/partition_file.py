"""One recovery partition file (Bytewax's SQLite schema, v0.21): its identity, its progress rows, a copy.

Bytewax spreads its progress over the set: the row of an execution (`exs`: worker count, resume epoch) and each
worker's frontier (`fronts`) live in whichever partition their key hashes to, so most partitions hold no
progress at all; the resume epoch comes from the union (recovery.rs resume_from).
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import bytewax.recovery


class PartitionFileError(ValueError):
    """The file is not a Bytewax recovery partition (or not the one its name says)."""


@dataclass(frozen=True)
class Rows:
    """A partition's progress rows of its latest executions: (execution, worker count, resume epoch) and
    (execution, worker, frontier)."""

    exs: tuple[tuple[int, int, int], ...] = ()
    fronts: tuple[tuple[int, int, int], ...] = ()

    def as_json(self) -> dict[str, list]:
        return {"exs": [list(r) for r in self.exs], "fronts": [list(r) for r in self.fronts]}

    @classmethod
    def from_json(cls, data: dict) -> Rows:
        return cls(
            tuple(tuple(int(v) for v in r) for r in data.get("exs", [])),  # type: ignore[misc]
            tuple(tuple(int(v) for v in r) for r in data.get("fronts", [])),  # type: ignore[misc]
        )


@dataclass(frozen=True)
class PartitionInfo:
    index: int
    count: int
    rows: Rows = field(default_factory=Rows)


KEEP_EXECUTIONS = 2  # rows of older executions never decide a resume; metadata stays small


def file_name(index: int) -> str:
    return f"part-{index}.sqlite3"


def index_of(path: Path) -> int | None:
    stem = path.name.removeprefix("part-").removesuffix(".sqlite3")
    return int(stem) if path.name.startswith("part-") and path.name.endswith(".sqlite3") and stem.isdigit() else None


def read_info(path: Path) -> PartitionInfo:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            parts = conn.execute("SELECT part_index, part_count FROM parts").fetchall()
            exs = conn.execute(
                "SELECT ex_num, worker_count, resume_epoch FROM exs ORDER BY ex_num DESC LIMIT ?", (KEEP_EXECUTIONS,)
            ).fetchall()
            newest = conn.execute("SELECT MAX(ex_num) FROM fronts").fetchone()[0]
            fronts = conn.execute(
                "SELECT ex_num, worker_index, worker_frontier FROM fronts WHERE ex_num > ? "
                "ORDER BY ex_num, worker_index",
                ((newest or 0) - KEEP_EXECUTIONS,),
            ).fetchall()
    except sqlite3.DatabaseError as err:
        raise PartitionFileError(f"{path}: not a recovery partition ({err})") from err
    if len(parts) != 1:
        raise PartitionFileError(f"{path}: holds {len(parts)} partition identities, not 1")
    index, count = parts[0]
    expected = index_of(path)
    if expected is not None and expected != index:
        raise PartitionFileError(f"{path}: holds partition {index}, not {expected}")
    return PartitionInfo(index=index, count=count, rows=Rows(tuple(sorted(exs)), tuple(fronts)))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def consistent_copy(source: Path, target: Path) -> None:
    """Copy a partition Bytewax may be writing (in WAL mode): SQLite's online backup gives one committed state.
    Its application id (unused by Bytewax, which versions its schema with user_version) is zeroed: see stamp."""
    target.unlink(missing_ok=True)
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA application_id = 0")


def stamp(path: Path, nonce: int) -> None:
    """Make this upload's bytes, hence its S3 ETag (an MD5), unique: the fence's If-Match must tell two uploads
    of the same content apart (an idle partition stored again with a newer as-of, by another pod)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA application_id = {int(nonce) & 0x7FFFFFFF}")


def create_set(directory: Path, count: int) -> None:
    """A fresh, empty set of `count` partitions (what `python -m bytewax.recovery DIR COUNT` makes)."""
    directory.mkdir(parents=True, exist_ok=True)
    bytewax.recovery.init_db_dir(directory, count)
