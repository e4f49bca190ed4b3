"""The index templates and indices: explicit mappings, created at start when missing, before any write.

An index created by a first write would get dynamic mappings (ids as analysed text, dates as strings), and
dashboards and range queries would quietly break; so both templates and both indices exist before the
first document (docs/DESIGN.md section 2).
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError, RequestError, TransportError

from dataflow.backoff import full_jitter
from dataflow.opensearch_sink.errors import FailureKind, OpenSearchHalt, classify_request
from dataflow.settings import Settings

log = logging.getLogger(__name__)

PROCESSED_MAPPINGS: dict[str, Any] = {
    "dynamic": True,
    "properties": {
        "review_id": {"type": "keyword"},
        "user_id": {"type": "keyword"},
        "date_time": {"type": "date"},
        "summary": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
        "sentiment": {"type": "keyword"},
        "label": {"type": "keyword"},
        "source": {"type": "keyword"},
        "model_id": {"type": "keyword"},
        "input_tokens": {"type": "integer"},
        "output_tokens": {"type": "integer"},
        "latency_ms": {"type": "integer"},
        "attempts": {"type": "integer"},
        "processed_at": {"type": "date"},
        "arrived_at": {"type": "date"},
        "shard_id": {"type": "keyword"},
        "sequence_number": {"type": "keyword"},
        "extra": {"type": "object", "enabled": False},
        **{
            "generation": {"type": "long"},
            "prompt_version": {"type": "keyword"},
            "schema_version": {"type": "integer"},
        },
    },
}
DLQ_MAPPINGS: dict[str, Any] = {
    "properties": {
        "review_id": {"type": "keyword"},
        "stage": {"type": "keyword"},
        "error_type": {"type": "keyword"},
        "error": {"type": "text"},
        "raw": {"type": "text"},
        "shard_id": {"type": "keyword"},
        "sequence_number": {"type": "keyword"},
        "attempts": {"type": "integer"},
        "failed_at": {"type": "date"},
        "generation": {"type": "long"},
    },
}
# Fields added after the first release (document schema 2): an index or template made before them gets them
# added at start (a mapping may gain fields, never change one), so dynamic mapping never guesses their type.
ADDED_FIELDS: dict[str, tuple[str, ...]] = {
    "reviewstream-processed": ("generation", "prompt_version", "schema_version"),
    "reviewstream-dlq": ("generation",),
}


def _template(client: OpenSearch, name: str) -> tuple[list[str], set[str]] | None:
    """The index patterns of template `name` and the fields its mappings name, or None when it does not exist."""
    try:
        found = client.indices.get_index_template(name=name)
    except NotFoundError:
        return None
    patterns: list[str] = []
    fields: set[str] = set()
    for entry in found.get("index_templates", []):
        body = entry.get("index_template", {})
        patterns.extend(body.get("index_patterns", []))
        fields.update(body.get("template", {}).get("mappings", {}).get("properties", {}))
    return patterns, fields


def _missing_fields(found: Any, name: str) -> dict[str, Any]:
    """The added fields (ADDED_FIELDS) that the existing index `index` (a GET answer: by concrete index name,
    several when `index` is an alias) does not map yet in every index."""
    mappings = PROCESSED_MAPPINGS if name == "reviewstream-processed" else DLQ_MAPPINGS
    missing: dict[str, Any] = {}
    for entry in (found or {}).values():
        mapped = entry.get("mappings", {}).get("properties", {})
        missing |= {f: mappings["properties"][f] for f in ADDED_FIELDS[name] if f not in mapped}
    return missing


def _get_index(client: OpenSearch, index: str) -> Any:
    """The index (settings and mappings), or None when missing. GET rather than HEAD: a refusal then comes
    with its body, so the halt line can say why."""
    try:
        return client.indices.get(index=index)
    except NotFoundError:
        return None


def ensure_index_templates(client: OpenSearch, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
    """Create the index templates and indices when missing.

    A template that exists but does not cover the configured index (OPENSEARCH_INDEX renamed, or a second
    flow on the same domain) gets the index added to its patterns: otherwise the new index would be created
    with dynamic mappings (ids as analysed text, dates as strings) and nothing would say so.

    OPENSEARCH_REFRESH_INTERVAL, when set, is applied to the results index (how soon a document is searchable;
    the domain's default is 1 s, which bounds how fresh a dashboard can be).

    Congestion is retried until OPENSEARCH_START_TIMEOUT_S, access denied until OPENSEARCH_AUTH_GRACE_S
    (role mappings take minutes after a deploy); any other refusal halts at once with the reason.

    Migration: a template made by an older release is rewritten with today's mappings (same patterns), and an
    existing index gets the fields added since (ADDED_FIELDS) through PUT _mapping; a field already mapped
    with another type is a refusal, which halts with OpenSearch's reason.
    """
    templates = {
        "reviewstream-processed": (settings.opensearch_index, PROCESSED_MAPPINGS),
        "reviewstream-dlq": (settings.opensearch_dlq_index, DLQ_MAPPINGS),
    }
    started = clock()
    attempt = 0
    while True:
        try:
            for name, (index, mappings) in templates.items():
                template = _template(client, name)
                patterns, fields = template if template is not None else ([], set())
                covers = any(fnmatch.fnmatchcase(index, p) for p in patterns)
                outdated = template is not None and not set(ADDED_FIELDS[name]) <= fields
                if template is None or not covers or outdated:
                    covered = sorted({*patterns, index})
                    client.indices.put_index_template(
                        name=name, body={"index_patterns": covered, "template": {"mappings": mappings}}
                    )
                    event = "template_created" if template is None else "template_extended"
                    event = "template_updated" if covers and outdated else event
                    log.info("opensearch.%s name=%s index=%s patterns=%s", event, name, index, ",".join(covered))
                # Both indices exist from the start, so dashboards and reports never meet a missing one.
                found = _get_index(client, index)
                if found is None:
                    try:
                        client.indices.create(index=index)
                    except RequestError as err:  # another worker just made it; any other 400 is ours to see
                        if err.error != "resource_already_exists_exception":
                            raise
                elif missing := _missing_fields(found, name):
                    client.indices.put_mapping(index=index, body={"properties": missing})
                    log.info("opensearch.mapping_extended index=%s fields=%s", index, ",".join(sorted(missing)))
            if settings.opensearch_refresh_interval:
                # A dynamic setting: applied to the existing index too, so changing it needs no new index.
                client.indices.put_settings(
                    index=settings.opensearch_index,
                    body={"index": {"refresh_interval": settings.opensearch_refresh_interval}},
                )
            return
        except (OSConnectionError, TransportError) as err:
            failure = classify_request(err)
            waited = clock() - started
            if failure.kind is FailureKind.RETRY:
                limit, name = settings.opensearch_start_timeout_s, "OPENSEARCH_START_TIMEOUT_S"
            elif failure.kind is FailureKind.AUTH:
                limit, name = settings.opensearch_auth_grace_s, "OPENSEARCH_AUTH_GRACE_S"
            else:
                limit, name = 0.0, ""
            if waited >= limit:
                after = f" after {waited:.0f} s ({name}={limit:.0f})" if name else ""
                message = (
                    f"cannot prepare OpenSearch index templates at OPENSEARCH_URL={settings.opensearch_url}{after}: "
                    f"{failure.describe()}"
                )
                log.error("opensearch.halt %s", message)
                raise OpenSearchHalt(message) from err
            log.warning("opensearch.not_ready status=%s waited_s=%.1f", failure.status, waited)
            time.sleep(min(full_jitter(min(attempt, 5), 0.5, 5.0) + 0.1, max(0.05, limit - waited)))
            attempt += 1
