"""The packing audit (dataflow/enrich/audit.py): which packed answers are checked, and when packing stops."""

from __future__ import annotations

import collections
import time

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflow.enrich.audit import MIN_AUDITS, PackingAudit, wilson
from dataflow.records import EnrichedReview, Review
from tests.dataflow.helpers import settings
from tests.fakes import FakeBedrock, lexicon_sentiment


def answer(i: int, sentiment: str = "positive") -> EnrichedReview:
    review = Review(f"r{i}", "u", "2024-01-01T00:00:00.000Z", f"text {i}", "shard", str(i), 0)
    return EnrichedReview(review, "Fine.", sentiment, "m", 10, 5, 100, 1)


def test_one_answer_of_every_nth_pack_is_picked_of_each_at_first_at_turning_positions() -> None:
    audit = PackingAudit("t", every=30, min_agreement=0.97)
    packs = [[answer(p * 4 + i) for i in range(4)] for p in range(200)]
    picked = [(p, chosen.review.review_id) for p, pack in enumerate(packs) if (chosen := audit.pick(pack))]
    assert [p for p, _ in picked[:MIN_AUDITS]] == list(range(MIN_AUDITS))  # every pack until MIN_AUDITS
    assert [p for p, _ in picked[MIN_AUDITS:]] == list(range(39, 200, 30))  # then every 30th
    assert [int(rid[1:]) % 4 for _, rid in picked[:4]] == [1, 2, 3, 0]  # each position in turn
    assert PackingAudit("t", every=0, min_agreement=0.97).pick(packs[0]) is None
    assert audit.pick([]) is None  # a pack without a valid answer has nothing to compare


def test_no_audit_in_the_first_minute_of_packs() -> None:
    """The first minute's requests set the pace under a per-minute quota: one-review audits among them raised it
    above what a tokens-per-minute quota admits for packs (BENCHMARKS.md). Audits begin a minute in."""
    now = [100.0]
    audit = PackingAudit("t", every=30, min_agreement=0.97, quiet_s=60.0, clock=lambda: now[0])
    pack = [answer(i) for i in range(4)]
    for step in range(60):
        now[0] = 100.0 + step
        assert audit.pick(pack) is None
    now[0] = 160.0
    assert [audit.pick(pack) is not None for _ in range(MIN_AUDITS + 1)] == [True] * MIN_AUDITS + [False]
    assert run_engine(FakeBedrock(), mixed_reviews(40), BEDROCK_PACKING_AUDIT_QUIET_S="60")[0].audit.picked == 0


def test_packing_stops_once_the_evidence_says_agreement_is_below_the_bar() -> None:
    audit = PackingAudit("t", every=1, min_agreement=0.97)
    assert [audit.record(answer(i), answer(i, "negative")) for i in range(MIN_AUDITS - 1)] == ["disagree"] * 9
    assert audit.packing  # fewer than MIN_AUDITS comparisons decide nothing
    assert audit.record(answer(9), answer(9)) == "agree" and not audit.packing  # 1 of 10: the evidence is in
    assert audit.pick([answer(1)]) is None  # no packs, nothing to audit
    assert audit.record(answer(1), None) == "failed" and audit.audited == MIN_AUDITS


def test_a_few_early_disagreements_do_not_stop_a_model_that_mostly_agrees() -> None:
    audit = PackingAudit("t", every=1, min_agreement=0.97)
    for i in range(MIN_AUDITS):
        audit.record(answer(i), answer(i, "negative" if i < 2 else "positive"))
    assert audit.packing  # 8 of 10: the 99.9% upper bound (~0.972) is above 0.97
    audit.record(answer(10), answer(10, "negative"))
    assert not audit.packing  # 8 of 11: ~0.95


def test_a_model_that_agrees_keeps_packing() -> None:
    audit = PackingAudit("t", every=1, min_agreement=0.97)
    for i in range(500):  # 99% agreement, one disagreement in each 100: the bound stays above 97%
        audit.record(answer(i), answer(i, "negative" if i % 100 == 99 else "positive"))
    assert audit.packing and (audit.audited, audit.agreed) == (500, 495)


@given(st.integers(0, 400), st.integers(1, 400))
def test_wilson_brackets_the_observed_share(hits: int, n: int) -> None:
    hits = min(hits, n)
    low, high = wilson(hits, n)
    assert 0.0 <= low <= hits / n <= high <= 1.0


class PackMixer(FakeBedrock):
    """A model that answers a review alone by its words, and a pack by the first review's words only."""

    async def converse(self, **kwargs):  # type: ignore[no-untyped-def]
        response = await super().converse(**kwargs)
        text = response["output"]["message"]["content"][0]["text"]
        body = orjson.loads("{" + text) if not text.startswith("{") else orjson.loads(text)
        results = body["results"]
        if len(results) > 1:
            first = results[0]["sentiment"]
            for entry in results:
                entry["sentiment"] = first
        out = orjson.dumps(body).decode()
        response["output"]["message"]["content"][0]["text"] = out if text.startswith("{") else out[1:]
        return response


def run_engine(bedrock: FakeBedrock, reviews: list[Review], **env: str):  # type: ignore[no-untyped-def]
    from dataflow.enrich.engine import EnrichEngine

    env = {"BEDROCK_REVIEWS_PER_REQUEST": "4", "BEDROCK_PACKING_AUDIT_QUIET_S": "0", **env}  # audits from the start
    engine = EnrichEngine(settings(**env), bedrock.factory(), worker="t")
    sink: collections.deque = collections.deque()
    try:
        engine.submit(reviews, sink)
        deadline = time.monotonic() + 20
        while len(sink) < len(reviews) and time.monotonic() < deadline:
            engine.wait_changed(0.1)
        time.sleep(0.2)  # audits still in flight finish
        return engine, [result for _, result in sink]
    finally:
        engine.close()


def mixed_reviews(n: int) -> list[Review]:
    words = ["great", "awful"]
    when = "2024-01-01T00:00:00.000Z"
    return [Review(f"r{i}", "u", when, f"It was {words[i % 2]}.", "s", str(i), 0) for i in range(n)]


@pytest.mark.parametrize("mixer", [False, True])
def test_the_engine_audits_packs_and_stops_packing_a_model_that_mixes_them(mixer: bool) -> None:
    bedrock = PackMixer() if mixer else FakeBedrock()
    reviews = mixed_reviews(400)
    engine, results = run_engine(bedrock, reviews, BEDROCK_PACKING_AUDIT_EVERY="4")
    assert sorted(r.review.review_id for r in results) == sorted(r.review_id for r in reviews)  # each once
    assert all(isinstance(r, EnrichedReview) for r in results)
    assert engine.audit.audited > 0
    if mixer:
        assert not engine.audit.packing and bedrock.review_counts[-1] == 1  # one review per request from then
        assert engine.audit.agreed < engine.audit.audited
    else:
        assert engine.audit.packing and engine.audit.agreed == engine.audit.audited
        assert all(r.sentiment == lexicon_sentiment(r.review.text) for r in results)
    singles = bedrock.review_counts.count(1)
    assert singles >= engine.audit.audited  # each audit was a request of its own


def test_the_engines_of_one_flow_share_one_audit() -> None:
    import threading

    from dataflow.enrich.registry import EngineRegistry

    registry = EngineRegistry(settings(BEDROCK_REVIEWS_PER_REQUEST="4"), FakeBedrock().factory())
    engines = []
    try:
        threads = [threading.Thread(target=lambda: engines.append(registry.for_current_worker())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(engines) == 2 and engines[0] is not engines[1]
        assert engines[0].audit is engines[1].audit is registry.audit  # one body of evidence per process
    finally:
        registry.close()


def test_the_rule_rarely_stops_a_model_that_agrees_and_always_stops_one_at_chance() -> None:
    """The rule is checked after every comparison of a run, so its bound is the 99.9% one (audit.py): seeded
    runs of 400 audits, with the agreement drawn at random per comparison."""
    import random

    rng = random.Random(27)
    agreeing, equal = answer(0), answer(0)

    def stopped_at(p: float) -> int | None:
        audit = PackingAudit("sim", every=1, min_agreement=0.97)
        for _ in range(400):
            audit.record(agreeing, equal if rng.random() < p else answer(0, "negative"))
            if not audit.packing:
                return audit.audited
        return None

    false_stops = sum(stopped_at(0.99) is not None for _ in range(300))
    assert false_stops <= 3  # <= 1% of runs for a model that agrees 99% of the time (0.2% expected)
    at_chance = sorted(n or 401 for n in (stopped_at(0.5) for _ in range(100)))
    assert at_chance[50] == MIN_AUDITS and at_chance[-1] <= 30  # at the 10th comparison, or a few later
