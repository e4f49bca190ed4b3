"""Builders for dataflow tests: records, settings and a flow with injected boundaries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflow.enrich import EngineRegistry
from dataflow.pipeline import build_flow
from dataflow.records import DeadLetter, EnrichedReview, KinesisRecord, Review
from dataflow.settings import Settings, load_settings


def record(n: int, shard: str = "shardId-000000000000", **fields: Any) -> KinesisRecord:
    doc = {
        "review_id": f"r{n}",
        "user_id": f"u{n % 7}",
        "date_time": 1_700_000_000_000 + n,
        "text": f"Review number {n}: the product is {'great' if n % 2 else 'awful'}.",
        "label": "positive" if n % 2 else "negative",
    }
    doc.update(fields)
    return KinesisRecord(shard, str(1000 + n), f"r{n}", 1_700_000_000_000 + n, orjson.dumps(doc))


def raw_record(n: int, data: bytes, shard: str = "shardId-000000000000") -> KinesisRecord:
    return KinesisRecord(shard, str(1000 + n), f"k{n}", 1_700_000_000_000, data)


def keyed(reviews: Iterable[Review]) -> list[tuple[str, Review]]:
    """Reviews as the flow hands them to the enrichment step: under their shard's key (dataflow/pipeline.py)."""
    return [(review.shard_id, review) for review in reviews]


def settings(**env: Any) -> Settings:
    base = {
        "BEDROCK_MAX_CONCURRENCY": "8",
        "BEDROCK_TIMEOUT_S": "2",
        "BEDROCK_MAX_ATTEMPTS": "4",
        "BEDROCK_BACKOFF_BASE_S": "0.01",
        "BEDROCK_BACKOFF_MAX_S": "0.05",
        "METRICS_PORT": "0",
        # These tests script faults and counts per request; packing has its own tests (the default is 8).
        "BEDROCK_REVIEWS_PER_REQUEST": "1",
    }
    base.update({k: str(v) for k, v in env.items()})
    return load_settings(base)


def flow_with(
    items: list[Any], bedrock: Any, cfg: Settings, results: list[Any], dead: list[Any], **source_kw: Any
) -> tuple[Any, EngineRegistry]:
    registry = EngineRegistry(cfg, bedrock.factory())
    flow = build_flow(
        cfg,
        source=TestingSource(items, **source_kw),
        registry=registry,
        results_sink=TestingSink(results),
        dead_letter_sink=TestingSink(dead),
    )
    return flow, registry


def ids(items: list[Any]) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, EnrichedReview):
            out.append(item.review.review_id)
        elif isinstance(item, DeadLetter):
            out.append(item.doc_id)
    return out


def run_flow(items: list[Any], bedrock: Any, cfg: Settings) -> tuple[list[Any], list[Any]]:
    """Run the real steps over `items` with `bedrock` at the boundary; (results, dead letters)."""
    results: list = []
    dead: list = []
    flow, registry = flow_with(items, bedrock, cfg, results, dead)
    try:
        run_main(flow)
    finally:
        registry.close()
    return results, dead
