"""Enrichment generations: which enrichment a stored result comes from, and the external version that orders them.

A result is written with an OpenSearch external version; OpenSearch keeps the highest. The version packs the
enrichment generation (ENRICHMENT_GENERATION, an explicit ordered setting) above the record's arrival time:

    version = generation << ARRIVAL_BITS | arrival_ms

so versions order by (generation, arrival): a newer generation replaces any result of an older one, a replay
of the same generation is a conflict (already stored, a no-op), and an older generation never replaces a newer
one. Documents written before generations existed carry version = arrival ms, which is exactly generation 0:
no rewrite is needed (docs/DEPLOY.md "Re-enrich with a new model or prompt").

Bounds: arrival ms below 2**42 (until 2109-05-15 UTC), generation at most MAX_GENERATION, so the largest
version (about 4.4e18) stays below OpenSearch's long maximum (2**63 - 1, about 9.2e18).

A conflict answer names the stored version; `Conflict.of` decodes it so a conflict against an older
generation (which should have replaced: the index holds versions from another scheme) is never counted as
stored in silence.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson

from dataflow.enrich import prompt, schema
from dataflow.records import DOCUMENT_SCHEMA_VERSION
from dataflow.settings import MAX_ENRICHMENT_GENERATION

ARRIVAL_BITS = 42
MAX_ARRIVAL_MS = (1 << ARRIVAL_BITS) - 1
MAX_GENERATION = MAX_ENRICHMENT_GENERATION
MAX_VERSION = (MAX_GENERATION << ARRIVAL_BITS) | MAX_ARRIVAL_MS
OPENSEARCH_MAX_VERSION = (1 << 63) - 1
LAST_ARRIVAL = datetime.fromtimestamp(MAX_ARRIVAL_MS / 1000, UTC)  # 2109-05-15T07:35:11.103Z

# OpenSearch's reason for a 409: "[id]: version conflict, current version [5] is higher or equal to the one
# provided [4]".
_CURRENT_VERSION = re.compile(r"current version \[(\d+)\]")


class VersionError(ValueError):
    """A generation or arrival time outside what the version can order; the message names the bound."""


def external_version(generation: int, arrival_ms: int) -> int:
    """The external version of a result of `generation` for a record that arrived at `arrival_ms`."""
    if not 0 <= generation <= MAX_GENERATION:
        raise VersionError(f"enrichment generation {generation} is outside 0..{MAX_GENERATION} (ENRICHMENT_GENERATION)")
    if not 0 <= arrival_ms <= MAX_ARRIVAL_MS:
        raise VersionError(
            f"arrival time {arrival_ms} ms is outside 0..{MAX_ARRIVAL_MS} (1970 to {LAST_ARRIVAL:%Y-%m-%d}): "
            "it cannot be ordered within an external version"
        )
    return (generation << ARRIVAL_BITS) | arrival_ms


def split_version(version: int) -> tuple[int, int]:
    """(generation, arrival ms) of a version written by `external_version` (a legacy version is generation 0)."""
    if version < 0:
        raise VersionError(f"version {version} is negative")
    return version >> ARRIVAL_BITS, version & MAX_ARRIVAL_MS


class ConflictKind(Enum):
    """What a version conflict means for the result that lost."""

    REPLAY = "replay"  # the same generation is stored, as new or newer: a no-op
    SUPERSEDED = "superseded"  # a newer generation is stored: this result is stale, correctly refused
    NOT_REPLACED = "not_replaced"  # an older generation is stored with a higher version: should have replaced


@dataclass(frozen=True)
class Conflict:
    kind: ConflictKind
    stored_version: int | None

    @classmethod
    def of(cls, reason: str, generation: int) -> Conflict:
        """Classify a 409 by the stored version named in its reason (unreadable: taken as a replay, as before)."""
        found = _CURRENT_VERSION.search(reason)
        if found is None:
            return cls(ConflictKind.REPLAY, None)
        stored = int(found.group(1))
        stored_generation = stored >> ARRIVAL_BITS
        if stored_generation == generation:
            return cls(ConflictKind.REPLAY, stored)
        if stored_generation > generation:
            return cls(ConflictKind.SUPERSEDED, stored)
        return cls(ConflictKind.NOT_REPLACED, stored)


def _prompt_fingerprint() -> str:
    """A short hash of everything the model is told (prompts, worked example, answer schema), so a prompt change
    shows in the stored documents without anyone remembering to bump a number."""
    parts: list[Any] = [
        prompt.SYSTEM_PROMPT,
        prompt.STRUCTURED_SYSTEM_PROMPT,
        prompt.EXAMPLE_REVIEW,
        prompt.EXAMPLE_ANSWER,
        prompt.PREFILL,
        prompt.MAX_SUMMARY_CHARS,
        schema.ENTRY,
    ]
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


PROMPT_VERSION = _prompt_fingerprint()


@dataclass(frozen=True)
class Generation:
    """What a stored result says about the enrichment that produced it (model id is on the result itself)."""

    generation: int
    prompt_version: str = PROMPT_VERSION

    def __post_init__(self) -> None:
        external_version(self.generation, 0)  # refuses a generation out of range

    def version(self, arrival_ms: int) -> int:
        return external_version(self.generation, arrival_ms)

    def fields(self) -> dict[str, Any]:
        """Stamped on every result document (and `generation` on every dead letter)."""
        return {
            "generation": self.generation,
            "prompt_version": self.prompt_version,
            "schema_version": DOCUMENT_SCHEMA_VERSION,
        }
