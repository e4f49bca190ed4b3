"""Version guards for the few places that lean on another project's internals.

Each such place names the releases it was tested with and calls `require` at import, so a new release of that
project fails with one line naming the fix instead of a wrong answer or a traceback deep inside it. The places
(docs/DESIGN.md "Leaning on other projects' internals" lists them):
- `devstack.kinesis_strict` (and so `devstack.kinesis_server`): moto's Kinesis models and responses, patched;
- `dataflow.recovery`: Bytewax's recovery SQLite schema, read and cut;
- `tests/infra/mocks.py`: Pulumi's mock monitor, subclassed, and its protobuf module.

`REVIEWSTREAM_UNTESTED_DEPS=1` turns the refusal into a warning: `make test-latest` sets it, so that a run on the
newest releases tests what they really do.
"""

from __future__ import annotations

import logging
import os
import re
from importlib import metadata

log = logging.getLogger(__name__)
OVERRIDE = "REVIEWSTREAM_UNTESTED_DEPS"


class UntestedVersion(RuntimeError):
    """An installed release outside the range a guarded place was tested with."""


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: "5.2.6" -> (5, 2, 6), "5.3.0.dev4" -> (5, 3, 0)."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(part) for part in match[0].split("."))


def within(version: str, lowest: str, highest: str) -> bool:
    """Whether `version` lies in [lowest, highest], compared release by release (missing parts count as 0)."""

    def padded(v: str) -> tuple[int, ...]:
        parts = release(v)
        return parts + (0,) * (4 - len(parts))

    return padded(lowest) <= padded(version) <= padded(highest)


def require(dist: str, lowest: str, highest: str, *, what: str, installed: str | None = None) -> str:
    """Refuse (one line naming the fix) unless `dist`'s installed release lies in the tested [lowest, highest]."""
    version = installed if installed is not None else metadata.version(dist)
    if within(version, lowest, highest):
        return version
    line = (
        f"{what} leans on {dist}'s internals and was tested with {dist} {lowest} to {highest}, not {version}: "
        f"install the locked versions (`make venv`), or set {OVERRIDE}=1 to try this one"
    )
    if os.environ.get(OVERRIDE) == "1":
        log.warning("compat.untested %s", line)
        return version
    raise UntestedVersion(line)
