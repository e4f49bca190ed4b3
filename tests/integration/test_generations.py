"""Re-enrichment that replaces (issue 29, "Re-run"): the real flow on the local stack, three runs over one stream.

300 reviews indexed with generation A; the stream re-read from TRIM_HORIZON (a new consumer, no recovery
state) with generation B: every document is B, rewritten. A's stream replayed: nothing changes, not one write,
and every result is counted as stored (superseded). Before generations, run B was refused as a version
conflict, counted as stored and changed nothing: its first assertion failed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from dataflow.opensearch_sink.generation import PROMPT_VERSION, split_version
from tests.faults.accounting import put_raw
from tests.plugins.stack import Pipeline

pytestmark = pytest.mark.integration

TOTAL = 300
A, B = 1, 2


def snapshot(pipeline: Pipeline, index_env: str = "OPENSEARCH_INDEX") -> dict[str, dict[str, Any]]:
    """`_id` -> source with `_version` and `_seq_no`: an unchanged `_seq_no` proves the document was not written."""
    client = pipeline.opensearch
    index = pipeline.env[index_env]
    client.indices.refresh(index=index)
    body = {"query": {"match_all": {}}, "size": 10000, "version": True, "seq_no_primary_term": True}
    hits = client.search(index=index, body=body)["hits"]["hits"]
    return {h["_id"]: {**h["_source"], "_version": h["_version"], "_seq_no": h["_seq_no"]} for h in hits}


def superseded(log: str, ours: int, stored: int) -> int:
    pattern = rf"opensearch\.superseded .*?documents=(\d+) generation={ours} stored_generation={stored}"
    return sum(int(n) for n in re.findall(pattern, log))


def test_a_new_generation_replaces_every_document_and_a_replay_of_the_old_one_changes_nothing(
    pipeline: Pipeline,
) -> None:
    pipeline.produce(TOTAL)
    put_raw(pipeline, [b"not json"])
    run = {"BEDROCK_REVIEWS_PER_REQUEST": "4"}
    pipeline.run_flow("-w", "2", extra_env={**run, "ENRICHMENT_GENERATION": str(A)})
    first = snapshot(pipeline)
    first_dlq = snapshot(pipeline, "OPENSEARCH_DLQ_INDEX")
    assert len(first) == TOTAL and len(first_dlq) == 1

    pipeline.run_flow("-w", "2", extra_env={**run, "ENRICHMENT_GENERATION": str(B)})
    second = snapshot(pipeline)
    assert len(second) == TOTAL
    rewritten = [i for i, d in second.items() if d["_seq_no"] > first[i]["_seq_no"]]
    assert len(rewritten) == TOTAL, f"generation {B} rewrote {len(rewritten)} of {TOTAL} documents"
    for doc_id, doc in second.items():  # same record, same arrival time: only the generation moved
        assert split_version(first[doc_id]["_version"])[0] == first[doc_id]["generation"] == A
        assert split_version(doc["_version"]) == (B, split_version(first[doc_id]["_version"])[1])
        assert doc["generation"] == B and doc["processed_at"] > first[doc_id]["processed_at"]
    assert {(d["prompt_version"], d["schema_version"]) for d in second.values()} == {(PROMPT_VERSION, 2)}
    assert [d["generation"] for d in first_dlq.values()] == [A]
    assert [d["generation"] for d in snapshot(pipeline, "OPENSEARCH_DLQ_INDEX").values()] == [B]

    log = pipeline.run_flow("-w", "2", extra_env={**run, "ENRICHMENT_GENERATION": str(A)})
    assert snapshot(pipeline) == second  # not one document written
    assert superseded(log, A, B) == TOTAL  # each one refused as older, and counted as stored (none dead-lettered)
    assert pipeline.count("OPENSEARCH_DLQ_INDEX") == 1
