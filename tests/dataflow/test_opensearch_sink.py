"""The OpenSearch sinks against osmem-server: idempotence, mapping errors, 429s and outages."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opensearchpy import OpenSearch

from dataflow.opensearch_sink import OpenSearchSink, opensearch_client
from dataflow.records import DeadLetter, EnrichedReview, Review
from tests.dataflow.helpers import settings
from tests.fault_proxy import FaultProxy


def review(n: int, user: str = "u1") -> Review:
    return Review(
        f"r{n}",
        user,
        "2024-01-01T00:00:00.000Z",
        f"text {n}",
        "shardId-000000000000",
        str(n),
        1_700_000_000_000,
        label="positive",
    )


def enriched(n: int, summary: str = "A fine product.", user: str = "u1") -> EnrichedReview:
    return EnrichedReview(review(n, user), summary, "positive", "model", 10, 5, 100, 1)


@pytest.fixture()
def cfg(opensearch_server) -> Any:
    suffix = uuid.uuid4().hex[:8]
    return settings(
        OPENSEARCH_URL=opensearch_server.url,
        OPENSEARCH_INDEX=f"processed_reviews_{suffix}",
        OPENSEARCH_DLQ_INDEX=f"processed_reviews_dlq_{suffix}",
        OPENSEARCH_BULK_MAX_DOCS=7,
        OPENSEARCH_BACKOFF_MAX_S=0.2,
    )


def client_for(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url])


def docs(client: OpenSearch, index: str) -> dict[str, dict]:
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"query": {"match_all": {}}, "size": 1000})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def sink_part(cfg: Any, kind: str) -> Any:
    return OpenSearchSink(cfg, kind).build("out", 0, 1)


def test_rewrite_is_idempotent_and_templates_exist(cfg, opensearch_server) -> None:
    part = sink_part(cfg, "results")
    part.write_batch([enriched(n) for n in range(20)])
    part.write_batch([enriched(n, summary="Rewritten on replay.") for n in range(10)] + [enriched(3)])
    client = client_for(opensearch_server.url)
    stored = docs(client, cfg.opensearch_index)
    assert len(stored) == 20
    assert stored["r3"]["summary"] == "A fine product."
    assert stored["r5"]["summary"] == "Rewritten on replay."
    assert stored["r15"]["sentiment"] == "positive" and stored["r15"]["label"] == "positive"
    mapping = client.indices.get_mapping(index=cfg.opensearch_index)[cfg.opensearch_index]["mappings"]["properties"]
    assert mapping["review_id"]["type"] == "keyword" and mapping["date_time"]["type"] == "date"
    assert mapping["summary"]["fields"]["keyword"]["type"] == "keyword"


def test_mapping_error_goes_to_the_dead_letter_index(cfg, opensearch_server) -> None:
    client = client_for(opensearch_server.url)
    # An index created by an older version with user_id as a number: a string user id cannot be stored.
    client.indices.create(index=cfg.opensearch_index, body={"mappings": {"properties": {"user_id": {"type": "long"}}}})
    part = sink_part(cfg, "results")
    part.write_batch([enriched(1, user="42"), enriched(2, user="not-a-number")])
    assert set(docs(client, cfg.opensearch_index)) == {"r1"}
    dead = docs(client, cfg.opensearch_dlq_index)
    assert set(dead) == {"r2"}
    assert dead["r2"]["stage"] == "index" and dead["r2"]["error_type"] == "mapper_parsing_exception"
    assert "user_id" in dead["r2"]["error"] and dead["r2"]["shard_id"] == "shardId-000000000000"


def test_dead_letters_are_stored_by_id(cfg, opensearch_server) -> None:
    part = sink_part(cfg, "dead_letters")
    letters = [
        DeadLetter("shardId-1-77", "parse", "invalid_json", "record is not JSON", "{oops", "shardId-1", "77"),
        DeadLetter.for_review(review(9), "enrich", "ThrottlingException", "throttled (after 5 attempt(s))", 5),
    ]
    part.write_batch(letters)
    part.write_batch(letters)  # a replay does not duplicate
    dead = docs(client_for(opensearch_server.url), cfg.opensearch_dlq_index)
    assert set(dead) == {"shardId-1-77", "r9"}
    assert dead["r9"]["attempts"] == 5 and dead["r9"]["review_id"] == "r9"


def test_429_and_outage_are_retried_until_indexed(cfg, opensearch_server) -> None:
    bulk_calls = [0]

    def decide(method: str, path: str) -> str | None:
        if "_bulk" not in path:
            return None
        bulk_calls[0] += 1
        return {1: "429", 2: "drop", 3: "503", 4: "429"}.get(bulk_calls[0])

    with FaultProxy(opensearch_server.url, decide) as proxy:
        proxied = settings(**{**env_of(cfg), "OPENSEARCH_URL": proxy.url})
        part = OpenSearchSink(proxied, "results").build("out", 0, 1)
        part.write_batch([enriched(n) for n in range(30)])
        assert proxy.count("429", "_bulk") == 2 and proxy.count("drop", "_bulk") == 1
    stored = docs(client_for(opensearch_server.url), cfg.opensearch_index)
    assert set(stored) == {f"r{n}" for n in range(30)}


def test_sigv4_requests_are_signed_for_es(cfg, opensearch_server, monkeypatch) -> None:
    with FaultProxy(opensearch_server.url) as proxy:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        signed = settings(**{**env_of(cfg), "OPENSEARCH_URL": proxy.url, "OPENSEARCH_AUTH": "sigv4"})
        opensearch_client(signed).info()
        auth = proxy.headers[-1].get("Authorization", "")
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/es/aws4_request" in auth


def env_of(cfg: Any) -> dict[str, str]:
    return {
        "OPENSEARCH_INDEX": cfg.opensearch_index,
        "OPENSEARCH_DLQ_INDEX": cfg.opensearch_dlq_index,
        "OPENSEARCH_BULK_MAX_DOCS": str(cfg.opensearch_bulk_max_docs),
        "OPENSEARCH_BACKOFF_MAX_S": "0.2",
    }
