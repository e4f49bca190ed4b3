"""The OpenSearch sinks against the strict local OpenSearch (osmem behind `devstack.opensearch_front`).

Idempotence and order (external versions), per-document errors, and whole-request errors that must never
turn innocent documents into dead letters: 400 (bisected), 413 (split), 401/403 (retried for the grace
period, then halted), 404/408, congestion; a dead letter the dead-letter index refuses halts; byte-based
chunking; template creation's non-retryable statuses and deadline.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import urllib3
from opensearchpy import OpenSearch

from dataflow.channels.store_acks import StoreAcks
from dataflow.opensearch_sink.errors import OpenSearchHalt
from dataflow.opensearch_sink.sink import OpenSearchSink
from dataflow.records import DeadLetter, EnrichedReview, Review
from tests.dataflow.helpers import settings
from tests.fault_proxy import FaultProxy, Reply

ARRIVAL = 1_700_000_000_000
LONG_ID = "é" * 300  # 300 characters (valid for the parser's character limit), 600 bytes in UTF-8


def review(n: int | str, user: str = "u1", arrival: int = ARRIVAL) -> Review:
    rid, seq = (n, "999") if isinstance(n, str) else (f"r{n}", str(n))
    return Review(rid, user, "2024-01-01T00:00:00.000Z", f"text {n}", "shardId-000000000000", seq, arrival)


def enriched(
    n: int | str, summary: str = "A fine product.", user: str = "u1", arrival: int = ARRIVAL
) -> EnrichedReview:
    return EnrichedReview(review(n, user, arrival), summary, "positive", "model", 10, 5, 100, 1)


class Front:
    """The strict front's run-time knobs; every test leaves it as it found it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = urllib3.PoolManager()

    def set(self, **knobs: object) -> dict[str, Any]:
        resp = self.http.request("POST", f"{self.url}/_front/config", body=orjson.dumps(knobs))
        assert resp.status == 200, resp.data
        return orjson.loads(resp.data)

    def stats(self) -> dict[str, int]:
        return orjson.loads(self.http.request("GET", f"{self.url}/_front/stats").data)["stats"]

    def reset(self) -> None:
        self.http.request("POST", f"{self.url}/_front/reset")


@pytest.fixture()
def front(opensearch_server) -> Iterator[Front]:
    knobs = Front(opensearch_server.url)
    knobs.reset()
    yield knobs
    knobs.reset()


@pytest.fixture()
def cfg(opensearch_server, front) -> Any:
    suffix = uuid.uuid4().hex[:8]
    return settings(**env_of(opensearch_server.url, suffix))


def env_of(url: str, suffix: str, **more: object) -> dict[str, str]:
    return {
        "OPENSEARCH_URL": url,
        "OPENSEARCH_INDEX": f"processed_reviews_{suffix}",
        "OPENSEARCH_DLQ_INDEX": f"processed_reviews_dlq_{suffix}",
        "OPENSEARCH_BULK_MAX_DOCS": "7",
        "OPENSEARCH_BACKOFF_MAX_S": "0.2",
        **{k: str(v) for k, v in more.items()},
    }


def with_env(cfg: Any, **more: object) -> Any:
    suffix = cfg.opensearch_index.rsplit("_", 1)[1]
    return settings(**env_of(cfg.opensearch_url, suffix, **more))


def client_for(url: str) -> OpenSearch:
    return OpenSearch(hosts=[url])


def docs(client: OpenSearch, index: str) -> dict[str, dict]:
    if not client.indices.exists(index=index):
        return {}
    client.indices.refresh(index=index)
    hits = client.search(index=index, body={"query": {"match_all": {}}, "size": 1000})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def sink_part(cfg: Any, kind: str) -> Any:
    return OpenSearchSink(cfg, kind).build("out", 0, 1)


def test_replays_are_idempotent_and_older_never_overwrites_newer(cfg, opensearch_server) -> None:
    part = sink_part(cfg, "results")
    part.write_batch([enriched(n) for n in range(20)])
    part.write_batch([enriched(n, summary="Same record replayed.") for n in range(5)])  # same arrival: a conflict
    part.write_batch([enriched(n, summary="Re-sent later.", arrival=ARRIVAL + 5) for n in range(5, 10)])
    part.write_batch([enriched(5, summary="An older copy.", arrival=ARRIVAL + 1)])  # arrives after, is older
    client = client_for(opensearch_server.url)
    stored = docs(client, cfg.opensearch_index)
    assert len(stored) == 20 and docs(client, cfg.opensearch_dlq_index) == {}
    assert stored["r3"]["summary"] == "A fine product."
    assert stored["r5"]["summary"] == "Re-sent later." and stored["r9"]["summary"] == "Re-sent later."
    assert stored["r15"]["sentiment"] == "positive"
    mapping = client.indices.get_mapping(index=cfg.opensearch_index)[cfg.opensearch_index]["mappings"]["properties"]
    assert mapping["review_id"]["type"] == "keyword" and mapping["date_time"]["type"] == "date"


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


def test_a_400_for_the_whole_request_is_bisected_to_the_guilty_document(cfg, opensearch_server, front) -> None:
    """One id over 512 bytes makes OpenSearch refuse the whole bulk: only that review is dead-lettered."""
    part = sink_part(cfg, "results")
    part.write_batch([enriched(n) for n in range(12)] + [enriched(LONG_ID)] + [enriched(n) for n in range(12, 20)])
    client = client_for(opensearch_server.url)
    assert set(docs(client, cfg.opensearch_index)) == {f"r{n}" for n in range(20)}
    dead = docs(client, cfg.opensearch_dlq_index)
    assert list(dead) == ["shardId-000000000000-999"]  # its own id cannot be an _id: shard-sequence instead
    letter = dead["shardId-000000000000-999"]
    assert letter["stage"] == "index" and letter["error_type"] == "action_request_validation_exception"
    assert "too long" in letter["error"] and "review_id" not in letter  # the id cannot be stored as a keyword
    assert front.stats().get("rejected_too_long_id", 0) >= 2  # the front refused the whole request, then halves


def test_a_413_splits_the_request_until_it_fits(cfg, opensearch_server, front) -> None:
    big = with_env(cfg, OPENSEARCH_BULK_MAX_DOCS=500, OPENSEARCH_BULK_MAX_BYTES=1024 * 1024)
    part = sink_part(big, "results")
    front.set(max_body_bytes=16 * 1024)
    part.write_batch([enriched(n, summary="Quite long. " + "x" * 1500) for n in range(40)])
    client = client_for(opensearch_server.url)
    assert set(docs(client, cfg.opensearch_index)) == {f"r{n}" for n in range(40)}
    assert docs(client, cfg.opensearch_dlq_index) == {}
    assert front.stats()["rejected_too_large"] >= 1


def test_a_document_too_large_alone_is_the_only_dead_letter(cfg, opensearch_server, front) -> None:
    part = sink_part(with_env(cfg, OPENSEARCH_BULK_MAX_DOCS=500), "results")
    front.set(max_body_bytes=12 * 1024)
    part.write_batch([enriched(n) for n in range(6)] + [enriched(6, summary="z" * 20_000)])
    client = client_for(opensearch_server.url)
    assert set(docs(client, cfg.opensearch_index)) == {f"r{n}" for n in range(6)}
    dead = docs(client, cfg.opensearch_dlq_index)
    assert set(dead) == {"r6"} and dead["r6"]["error_type"] == "request_too_large"
    assert "Request size exceeded 12288 bytes" in dead["r6"]["error"]


def test_access_denied_is_retried_while_the_role_mapping_appears(cfg, opensearch_server, front) -> None:
    part = sink_part(cfg, "results")
    front.set(deny_access=True)
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            part.write_batch([enriched(n) for n in range(10)])
        except BaseException as err:  # reported to the test thread
            errors.append(err)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    asked = 0
    for _ in range(1200):  # a hang guard only (60 s): the wait ends on the front's count
        asked = front.stats().get("rejected_access_denied", 0)
        if asked >= 3 or done.is_set():
            break
        done.wait(0.05)
    assert asked >= 3 and not done.is_set(), f"the sink stopped asking while refused: {errors}"
    front.set(deny_access=False)
    writer.join(60)
    assert done.is_set() and not errors
    client = client_for(opensearch_server.url)
    assert set(docs(client, cfg.opensearch_index)) == {f"r{n}" for n in range(10)}
    assert docs(client, cfg.opensearch_dlq_index) == {}


def test_access_denied_past_the_grace_period_halts_without_dead_letters(cfg, opensearch_server, front) -> None:
    part = sink_part(with_env(cfg, OPENSEARCH_AUTH_GRACE_S=0), "results")
    front.set(deny_access=True)
    with pytest.raises(
        OpenSearchHalt, match=r"OPENSEARCH_AUTH_GRACE_S.*no permissions for \[indices:data/write/bulk\]"
    ):
        part.write_batch([enriched(n) for n in range(10)])
    front.set(deny_access=False)
    client = client_for(opensearch_server.url)
    assert docs(client, cfg.opensearch_index) == {} and docs(client, cfg.opensearch_dlq_index) == {}


def test_a_dead_letter_the_dead_letter_index_refuses_halts(cfg, opensearch_server) -> None:
    client = client_for(opensearch_server.url)
    client.indices.create(
        index=cfg.opensearch_dlq_index, body={"mappings": {"properties": {"stage": {"type": "long"}}}}
    )
    part = sink_part(cfg, "dead_letters")
    letter = DeadLetter("shardId-1-5", "parse", "invalid_json", "record is not JSON", "{oops", "shardId-1", "5")
    with pytest.raises(OpenSearchHalt, match="OPENSEARCH_DLQ_INDEX"):
        part.write_batch([letter])


def test_408_and_congestion_are_retried_a_404_on_bulk_halts(cfg, opensearch_server) -> None:
    calls = [0]

    def decide(method: str, path: str) -> Any:
        if "_bulk" not in path:
            return None
        calls[0] += 1
        return {1: Reply(408, b'{"error":"timeout"}', "408"), 2: "429", 3: "drop", 4: "503"}.get(calls[0])

    with FaultProxy(opensearch_server.url, decide) as proxy:
        part = sink_part(with_env(cfg, OPENSEARCH_URL=proxy.url), "results")
        part.write_batch([enriched(n) for n in range(5)])
        assert proxy.count("408", "_bulk") == 1 and proxy.count(None, "_bulk") == 1
    assert set(docs(client_for(opensearch_server.url), cfg.opensearch_index)) == {f"r{n}" for n in range(5)}

    not_found = Reply(404, b'{"error":"no handler found for uri [/_bulk]"}', "404")
    with FaultProxy(opensearch_server.url, lambda m, p: not_found if "_bulk" in p else None) as proxy:
        part = sink_part(with_env(cfg, OPENSEARCH_URL=proxy.url), "results")
        with pytest.raises(OpenSearchHalt, match="OPENSEARCH_URL"):
            part.write_batch([enriched(n) for n in range(5, 10)])
        assert proxy.count("404", "_bulk") == 1  # a configuration error is not retried nor dead-lettered


def test_bulk_requests_are_chunked_by_bytes(cfg, opensearch_server) -> None:
    limit = 8 * 1024
    with FaultProxy(opensearch_server.url) as proxy:
        part = sink_part(
            with_env(cfg, OPENSEARCH_URL=proxy.url, OPENSEARCH_BULK_MAX_DOCS=500, OPENSEARCH_BULK_MAX_BYTES=limit),
            "results",
        )
        part.write_batch([enriched(n, summary="y" * 900) for n in range(40)])
        sizes = [
            int(h["Content-Length"])
            for (_, path, _), h in zip(proxy.requests, proxy.headers, strict=True)
            if "_bulk" in path
        ]
    assert len(sizes) >= 40 * 900 // limit and max(sizes) <= limit
    assert len(docs(client_for(opensearch_server.url), cfg.opensearch_index)) == 40


def test_template_creation_halts_on_a_refusal_and_at_its_deadline(cfg, opensearch_server) -> None:
    refused = Reply(400, b'{"error":{"type":"illegal_argument_exception","reason":"bad template"},"status":400}', "400")
    index_path = f"/{cfg.opensearch_index}"
    with FaultProxy(opensearch_server.url, lambda m, p: refused if (m, p) == ("PUT", index_path) else None) as proxy:
        with pytest.raises(OpenSearchHalt, match="illegal_argument_exception: bad template"):
            sink_part(with_env(cfg, OPENSEARCH_URL=proxy.url), "results")
        assert proxy.count("400") == 1  # not retried
    with FaultProxy(opensearch_server.url, lambda m, p: "503") as proxy:
        slow = with_env(cfg, OPENSEARCH_URL=proxy.url, OPENSEARCH_START_TIMEOUT_S=0.3)
        with pytest.raises(OpenSearchHalt, match="OPENSEARCH_START_TIMEOUT_S=0"):
            sink_part(slow, "results")
        assert proxy.count("503") >= 2  # retried until the deadline


def test_sigv4_gzip_bulk_is_verified_end_to_end(cfg, opensearch_server, front, monkeypatch) -> None:
    """The front recomputes each SigV4 signature (botocore) over the gzip body as sent and refuses a wrong one."""
    front.set(require_sigv4=True, secrets={"AKIDEXAMPLE": "right-secret"})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "right-secret")
    signed = with_env(cfg, OPENSEARCH_AUTH="sigv4", OPENSEARCH_AUTH_GRACE_S=0)
    part = sink_part(signed, "results")
    part.write_batch([enriched(n) for n in range(10)])
    stats = front.stats()
    assert stats["forwarded_bulk"] >= 1 and stats.get("rejected_signature", 0) == 0
    assert stats["gzip_requests"] >= 1 and stats["signed_requests"] == stats["forwarded"]
    front.set(require_sigv4=False)
    assert len(docs(client_for(opensearch_server.url), cfg.opensearch_index)) == 10

    front.set(require_sigv4=True)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(OpenSearchHalt, match="signature we calculated does not match"):
        sink_part(signed, "results")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "right-secret")
    front.set(clock_offset_s=600)  # our clock 10 minutes behind the service's
    with pytest.raises(OpenSearchHalt, match="Signature expired"):
        part.write_batch([enriched(n) for n in range(10, 12)])
    assert front.stats()["rejected_signature"] >= 2


def test_sigv4_without_credentials_fails_with_one_clear_line(cfg, monkeypatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(OpenSearchHalt, match="OPENSEARCH_AUTH=sigv4 but no AWS credentials"):
        sink_part(with_env(cfg, OPENSEARCH_AUTH="sigv4"), "results")


def test_a_400_every_document_meets_alone_is_the_request_not_the_documents(cfg, opensearch_server) -> None:
    refused = Reply(
        400,
        b'{"error":{"type":"illegal_argument_exception","reason":"request [/_bulk] contains unrecognized parameter"},'
        b'"status":400}',
        "400",
    )
    with FaultProxy(opensearch_server.url, lambda m, p: refused if "_bulk" in p else None) as proxy:
        part = sink_part(with_env(cfg, OPENSEARCH_URL=proxy.url), "results")
        with pytest.raises(OpenSearchHalt, match="the request is wrong, not the documents"):
            part.write_batch([enriched(n) for n in range(6)])
    assert docs(client_for(opensearch_server.url), cfg.opensearch_dlq_index) == {}


def index_missing(body: bytes) -> Reply:
    """A 200 whose every item says the index is gone (deleted under a running flow)."""
    actions = [orjson.loads(line) for line in body.splitlines() if line.strip()][::2]
    error = {"type": "index_not_found_exception", "reason": "no such index"}
    items = [{"index": {"_id": a["index"]["_id"], "status": 404, "error": error}} for a in actions]
    return Reply(200, orjson.dumps({"took": 1, "errors": True, "items": items}), "404_items")


def test_a_deleted_index_is_recreated_once_then_halts(cfg, opensearch_server) -> None:
    bulks = [0]

    def once(method: str, path: str, headers: Any, body: bytes) -> Any:
        if "_bulk" not in path:
            return None
        bulks[0] += 1
        return index_missing(body) if bulks[0] == 1 else None

    with FaultProxy(opensearch_server.url, inspect=once) as proxy:
        part = sink_part(with_env(cfg, OPENSEARCH_URL=proxy.url), "results")
        templates_before = sum(1 for _, p, _ in proxy.requests if "_index_template" in p)
        part.write_batch([enriched(n) for n in range(5)])
        assert sum(1 for _, p, _ in proxy.requests if "_index_template" in p) > templates_before  # prepared again
    assert set(docs(client_for(opensearch_server.url), cfg.opensearch_index)) == {f"r{n}" for n in range(5)}

    always = FaultProxy(opensearch_server.url, inspect=lambda m, p, h, b: index_missing(b) if "_bulk" in p else None)
    with always as proxy:
        part = sink_part(with_env(cfg, OPENSEARCH_URL=proxy.url), "results")
        with pytest.raises(OpenSearchHalt, match="is missing and was not recreated"):
            part.write_batch([enriched(n) for n in range(5, 8)])


def test_with_a_ledger_results_are_written_in_the_background_and_acknowledged(cfg, opensearch_server) -> None:
    held, release = threading.Event(), threading.Event()

    def decide(method: str, path: str) -> Any:
        if "_bulk" in path:
            held.set()
            release.wait(30)  # OpenSearch is slow: the bulk request hangs until the test lets it through
        return None

    acks = StoreAcks()
    with FaultProxy(opensearch_server.url, decide) as proxy:
        part = OpenSearchSink(with_env(cfg, OPENSEARCH_URL=proxy.url), "results", acks=acks).build("out", 0, 1)
        part.write_batch([enriched(n) for n in range(10)])  # returns although the bulk request hangs
        assert held.wait(30)
        part.write_batch([enriched(n) for n in range(10, 15)])
        assert len(acks) == 0
        release.set()
        part.close()  # writes what is queued before it returns
    assert set(docs(client_for(opensearch_server.url), cfg.opensearch_index)) == {f"r{n}" for n in range(15)}
    pending = {("shardId-000000000000", str(n)): n for n in range(15)}
    acks.claim(pending)
    assert pending == {}


def test_a_new_index_name_is_added_to_the_existing_template(cfg, opensearch_server) -> None:
    """OPENSEARCH_INDEX changed (or a second flow on the same domain): the template of the first name must not
    leave the new index to dynamic mappings (review_id as text, dates as strings)."""
    client = client_for(opensearch_server.url)
    first = with_env(cfg)
    suffix = uuid.uuid4().hex[:8]
    second = settings(**env_of(opensearch_server.url, suffix))
    for one in (first, second):
        part = sink_part(one, "results")
        part.write_batch([enriched(1)])
        props = client.indices.get_mapping(index=one.opensearch_index)[one.opensearch_index]["mappings"]["properties"]
        assert props["review_id"]["type"] == "keyword" and props["date_time"]["type"] == "date"
        dlq = client.indices.get_mapping(index=one.opensearch_dlq_index)[one.opensearch_dlq_index]["mappings"]
        assert dlq["properties"]["stage"]["type"] == "keyword"
    template = client.indices.get_index_template(name="reviewstream-processed")["index_templates"][0]
    assert {first.opensearch_index, second.opensearch_index} <= set(template["index_template"]["index_patterns"])


def test_the_refresh_interval_is_set_on_the_results_index_and_changed_on_restart(cfg, opensearch_server) -> None:
    """How soon a document is searchable (the domain's default is 1 s): a dynamic setting, so a restart with
    another value changes the existing index; unset, the index keeps whatever it has."""
    client = client_for(opensearch_server.url)

    def refresh_interval() -> str | None:
        found = client.indices.get_settings(index=cfg.opensearch_index)[cfg.opensearch_index]["settings"]["index"]
        return found.get("refresh_interval")

    sink_part(with_env(cfg, OPENSEARCH_REFRESH_INTERVAL="200ms"), "results").write_batch([enriched(1)])
    assert refresh_interval() == "200ms"
    sink_part(with_env(cfg, OPENSEARCH_REFRESH_INTERVAL="1s"), "results")
    assert refresh_interval() == "1s"
    sink_part(with_env(cfg), "results")
    assert refresh_interval() == "1s"
