"""What this pod knows of each partition it holds: the store's version it descends from (the fence's ETag),
and the as-of epoch its content vouches for.

Kept in the pod's directory beside the partitions (`.held.json`, replaced atomically), so a container restarted
in place still writes with the right `If-Match`, and its init step can tell a kept file whose store object was
replaced meanwhile (by a replacement pod, an operator's restore): that file is fetched again, never kept.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FILE = ".held.json"


@dataclass(frozen=True)
class Held:
    etag: str  # the store's version this file descends from: the next upload's If-Match
    as_of: int  # every snapshot before this epoch is in the file (until the running execution vouches for more)
    digest: str = ""  # the content stored under `etag`


def load(directory: Path) -> dict[int, Held]:
    try:
        data = orjson.loads((directory / FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {int(i): Held(**h) for i, h in data.items()}


def save(directory: Path, held: dict[int, Held]) -> None:
    tmp = directory / f"{FILE}.tmp"
    tmp.write_bytes(orjson.dumps({str(i): asdict(h) for i, h in sorted(held.items())}))
    os.replace(tmp, directory / FILE)
