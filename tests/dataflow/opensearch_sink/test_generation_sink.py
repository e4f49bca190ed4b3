"""Generations against the strict local OpenSearch: today's documents migrate as generation 0 and are replaced by
a newer generation; an older generation or a replay changes nothing and is counted as stored."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dataflow import metrics
from dataflow.opensearch_sink.bulk import BulkDoc, BulkWriter
from dataflow.opensearch_sink.generation import PROMPT_VERSION, external_version
from dataflow.opensearch_sink.templates import ADDED_FIELDS, DLQ_MAPPINGS, PROCESSED_MAPPINGS
from dataflow.records import DeadLetter
from tests.dataflow.opensearch_sink import test_sink as base
from tests.dataflow.opensearch_sink.test_sink import ARRIVAL, client_for, docs, enriched, review, sink_part, with_env

cfg, front = base.cfg, base.front  # the sink tests' fixtures: fresh indices per test, the strict front reset


def without_added(mappings: dict[str, Any], name: str) -> dict[str, Any]:
    props = {k: v for k, v in mappings["properties"].items() if k not in ADDED_FIELDS[name]}
    return {**mappings, "properties": props}


def write_as_before_generations(cfg: Any, url: str, count: int) -> None:
    """What the release before generations did: its templates and indices, version = arrival ms, no new fields."""
    client = client_for(url)
    for name, index, mappings in (
        ("reviewstream-processed", cfg.opensearch_index, PROCESSED_MAPPINGS),
        ("reviewstream-dlq", cfg.opensearch_dlq_index, DLQ_MAPPINGS),
    ):
        body = {"index_patterns": [index], "template": {"mappings": without_added(mappings, name)}}
        client.indices.put_index_template(name=name, body=body)
        client.indices.create(index=index)
    old = {f"r{n}": BulkDoc(enriched(n, summary="Old model.").document(), ARRIVAL + n) for n in range(count)}
    assert BulkWriter(client, cfg).write(cfg.opensearch_index, old) == {}


def versions(url: str, index: str) -> dict[str, tuple[int, int]]:
    """`_id` -> (`_version`, `_seq_no`): an unchanged pair proves nothing was written."""
    client = client_for(url)
    client.indices.refresh(index=index)
    body = {"query": {"match_all": {}}, "size": 1000, "version": True, "seq_no_primary_term": True}
    hits = client.search(index=index, body=body)["hits"]["hits"]
    return {h["_id"]: (h["_version"], h["_seq_no"]) for h in hits}


def indexed(index: str) -> float:
    return metrics.DOCS_INDEXED.labels(index)._value.get()


def test_todays_documents_are_generation_zero_and_generation_one_replaces_them(
    cfg, opensearch_server, caplog: pytest.LogCaptureFixture
) -> None:
    url = opensearch_server.url
    write_as_before_generations(cfg, url, 12)
    before = versions(url, cfg.opensearch_index)
    assert {v for v, _ in before.values()} == {ARRIVAL + n for n in range(12)}

    one = with_env(cfg, ENRICHMENT_GENERATION=1)
    part = sink_part(one, "results")  # migrates the template and the index's mapping at start
    client = client_for(url)
    mapped = client.indices.get_mapping(index=cfg.opensearch_index)[cfg.opensearch_index]["mappings"]["properties"]
    assert (mapped["generation"]["type"], mapped["prompt_version"]["type"]) == ("long", "keyword")
    assert mapped["schema_version"]["type"] == "integer"
    template = client.indices.get_index_template(name="reviewstream-processed")["index_templates"][0]
    assert "generation" in template["index_template"]["template"]["mappings"]["properties"]

    part.write_batch([enriched(n, summary="New model.", arrival=ARRIVAL + n) for n in range(12)])
    stored = docs(client, cfg.opensearch_index)
    assert {d["summary"] for d in stored.values()} == {"New model."}
    assert {(d["generation"], d["prompt_version"], d["schema_version"]) for d in stored.values()} == {
        (1, PROMPT_VERSION, 2)
    }
    after = versions(url, cfg.opensearch_index)
    assert after["r3"][0] == external_version(1, ARRIVAL + 3) and after["r3"][1] > before["r3"][1]

    # The old flow still running (generation 0), and a replay of generation 1: refused, counted as stored.
    counted = indexed(cfg.opensearch_index)
    with caplog.at_level(logging.WARNING, logger="dataflow.opensearch_sink.bulk"):
        sink_part(cfg, "results").write_batch(
            [enriched(n, summary="Old again.", arrival=ARRIVAL + n) for n in range(12)]
        )
    part.write_batch([enriched(n, summary="Replayed.", arrival=ARRIVAL + n) for n in range(12)])
    assert versions(url, cfg.opensearch_index) == after
    assert {d["summary"] for d in docs(client, cfg.opensearch_index).values()} == {"New model."}
    assert indexed(cfg.opensearch_index) - counted == 24
    assert docs(client, cfg.opensearch_dlq_index) == {}
    superseded = [r.getMessage() for r in caplog.records if "opensearch.superseded" in r.getMessage()]
    assert superseded and all("generation=0 stored_generation=1" in m for m in superseded)
    assert sum(int(m.split("documents=")[1].split()[0]) for m in superseded) == 12


def test_dead_letters_say_their_generation(cfg, opensearch_server) -> None:
    letter = DeadLetter.for_review(review(1), "enrich", "invalid_answer:json", "not JSON", 2)
    sink_part(with_env(cfg, ENRICHMENT_GENERATION=3), "dead_letters").write_batch([letter])
    client = client_for(opensearch_server.url)
    assert docs(client, cfg.opensearch_dlq_index)["r1"]["generation"] == 3
    mapped = client.indices.get_mapping(index=cfg.opensearch_dlq_index)[cfg.opensearch_dlq_index]["mappings"]
    assert mapped["properties"]["generation"]["type"] == "long"


def test_an_arrival_no_version_can_order_is_a_dead_letter_not_a_crash(cfg, opensearch_server) -> None:
    sink_part(cfg, "results").write_batch([enriched(1), enriched(2, arrival=1 << 42)])
    client = client_for(opensearch_server.url)
    assert set(docs(client, cfg.opensearch_index)) == {"r1"}
    letter = docs(client, cfg.opensearch_dlq_index)["r2"]
    assert (letter["stage"], letter["error_type"]) == ("index", "version_out_of_range")
    assert "2109-05-15" in letter["error"]
