"""Pieces of the Bedrock server that need no process: quota window, knobs, summaries, the answer grammar."""

from __future__ import annotations

import pytest

from dataflow.prompt import is_one_sentence
from devstack.bedrock.backends import Message, ModelRequest
from devstack.bedrock.backends.lexicon import summarise
from devstack.bedrock.backends.llm import SUMMARY_PATTERN, answer_grammar, answer_schema
from devstack.bedrock.faults import Faults, Knobs
from devstack.bedrock.quota import Quota, QuotaDenied


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_quota_sliding_window_and_settling() -> None:
    clock = FakeClock()
    quota = Quota(rpm=2, tpm=100, clock=clock)
    first = quota.reserve(60)
    with pytest.raises(QuotaDenied) as denied:
        quota.reserve(50)
    assert denied.value.which == "tokens"
    quota.settle(first, 20)
    quota.reserve(50)
    with pytest.raises(QuotaDenied) as denied:
        quota.reserve(1)
    assert denied.value.which == "requests"
    clock.now += 59.9
    with pytest.raises(QuotaDenied):
        quota.reserve(1)
    clock.now += 0.2  # both entries are now older than 60 s
    assert quota.usage() == {"requests": 0, "tokens": 0}
    quota.reserve(100)


def test_knobs_validation_and_updates() -> None:
    knobs = Knobs().updated({"throttle_rate": "0.5", "rpm": 10.0, "error_codes": ["InternalServerException"]})
    assert knobs.throttle_rate == 0.5 and knobs.rpm == 10 and knobs.error_codes == ("InternalServerException",)
    for bad in ({"throttle_rate": 1.5}, {"nope": 1}, {"fail_with": "X"}, {"rpm": -1}, {"latency_ms": "slow"}):
        with pytest.raises(ValueError):
            Knobs().updated(bad)


def test_fault_draws_follow_rates() -> None:
    faults = Faults(Knobs(throttle_rate=0.3, seed=1))
    kinds = [faults.draw().kind for _ in range(2000)]
    assert 0.25 < kinds.count("throttle") / 2000 < 0.35
    assert set(kinds) == {"throttle", None}
    lognormal = Faults(Knobs(latency_median_ms=1000, latency_sigma=0.5, seed=2))
    samples = sorted(lognormal.latency_s(0) for _ in range(999))
    assert 0.9 < samples[499] < 1.1  # the median is the median


@pytest.mark.parametrize(
    "text",
    [
        "Wow! This is great. I love it.",
        "Mr. Smith sold me this. It broke!! Awful...",
        "",
        "!!!",
        "word " * 100,
        "Line one\nline two. Next sentence here is longer than four words.",
        "I paid $3.50 for it... then it broke? Yes. Sad.",
        '"Best buy ever." said my wife! (Really.) 10/10',
    ],
)
def test_lexicon_summary_is_always_one_short_sentence(text: str) -> None:
    summary = summarise(text)
    assert is_one_sentence(summary) and summary.endswith(".") and summary[0].isupper()
    assert len(summary.split()) <= 26


def test_reviews_are_read_from_the_last_user_turn_only() -> None:
    request = ModelRequest(
        model_id="m",
        system="s",
        messages=(
            Message("user", '<review id="1">example</review>'),
            Message("assistant", "{}"),
            Message("user", 'Go.\n<review id="1">a &lt;b&gt; &amp; c</review>\n<review id="2">two</review>'),
            Message("assistant", "{"),
        ),
        max_tokens=10,
    )
    assert request.reviews() == [("1", "a <b> & c"), ("2", "two")]
    assert request.prefill == "{"


def test_answer_grammar_pins_ids_and_format() -> None:
    grammar = answer_grammar(["1", "2"])
    assert grammar.count("item") == 4  # two items referenced by root, two defined
    assert '\\"id\\": \\"2\\"' in grammar and 'sentiment ::= "positive" | "negative"' in grammar
    schema = answer_schema(["1", "2"])
    items = schema["properties"]["results"]
    assert items["minItems"] == items["maxItems"] == 2
    assert items["items"]["properties"]["summary"]["pattern"] == SUMMARY_PATTERN
