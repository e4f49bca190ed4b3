"""Pieces of the Bedrock server that need no process: quota window, knobs, summaries, the answer grammar."""

from __future__ import annotations

import pytest

from dataflow.enrich.prompt import is_one_sentence
from devstack.bedrock.admission import EWMA_ALPHA, Admission
from devstack.bedrock.backends import Message, ModelRequest
from devstack.bedrock.backends.lexicon import summarise
from devstack.bedrock.backends.llm import SUMMARY_PATTERN, answer_grammar, answer_schema
from devstack.bedrock.errors import BedrockError
from devstack.bedrock.faults import Faults, Knobs
from devstack.bedrock.models import resolve_model
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
    for bad in (
        {"throttle_rate": 1.5},
        {"nope": 1},
        {"fail_with": "X"},
        {"rpm": -1},
        {"latency_ms": "slow"},
        {"paused": 1},
    ):
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
    "distribution,p50_over_mean,p99_over_p50",
    [("constant", 1.0, 1.0), ("lognormal", 0.88, 3.2), ("exponential", 0.69, 6.6)],
)
def test_latency_distributions_keep_their_mean_and_spread(
    distribution: str, p50_over_mean: float, p99_over_p50: float
) -> None:
    faults = Faults(Knobs(latency_mean_ms=1000, latency_distribution=distribution, latency_sigma=0.5, seed=3))
    samples = sorted(faults.latency_s(0) for _ in range(20_000))
    mean = sum(samples) / len(samples)
    p50, p99 = samples[10_000], samples[19_800]
    assert mean == pytest.approx(1.0, rel=0.03)
    assert p50 / mean == pytest.approx(p50_over_mean, rel=0.05)
    assert p99 / p50 == pytest.approx(p99_over_p50, rel=0.1)


def test_the_latency_distribution_knob_is_checked() -> None:
    assert Knobs().updated({"latency_distribution": "exponential"}).latency_distribution == "exponential"
    with pytest.raises(ValueError):
        Knobs().updated({"latency_distribution": "pareto"})


def test_burned_quota_tokens_count_output_at_the_burndown_rate() -> None:
    assert Quota.burned(1000, 100, 5) == 1500
    assert Quota.burned(1000, 100, 1) == Quota.burned(1000, 100, 0) == 1100


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


def test_admission_sizes_the_queue_from_service_time_and_timeout() -> None:
    clock = FakeClock()
    admission = Admission(slots=2, clock=clock)
    assert admission.queue_limit(20.0, None) == 2  # cold: one waiting per slot
    admission.observe(5.0)
    # 2 slots, 5 s each, 20 s budget: the 6th in line starts at 15 s and ends at 20 s; the 7th would not.
    assert admission.queue_limit(20.0, None) == 6
    assert admission.queue_limit(9.9, None) == 0 and admission.queue_limit(20.0, 1) == 1
    assert admission.queue_limit(0.0, None) is None  # the unbounded-queue knob
    admission.observe(10.0)
    assert admission.service_ewma_s == pytest.approx(5.0 + EWMA_ALPHA * 5.0)
    assert Admission(slots=0).queue_limit(20.0, 0) is None  # no slots: nothing ever waits


def test_admission_counts_slots_and_measures_them() -> None:
    import asyncio

    clock = FakeClock()
    admission = Admission(slots=1, clock=clock)

    async def scenario() -> list[bool]:
        decisions = [admission.admits(20.0, 1)]  # a slot is free
        release = asyncio.Event()

        async def hold() -> None:
            async with admission.slot():
                await release.wait()
                clock.now += 4.0

        first = asyncio.create_task(hold())
        await asyncio.sleep(0)
        decisions.append(admission.admits(20.0, 1))  # busy, room for one in the queue
        second = asyncio.create_task(hold())
        await asyncio.sleep(0)
        assert (admission.in_service, admission.queued) == (1, 1)
        decisions.append(admission.admits(20.0, 1))  # busy and the queue is full
        release.set()
        await asyncio.gather(first, second)
        return decisions

    assert asyncio.run(scenario()) == [True, True, False]
    assert (admission.in_service, admission.queued, admission.max_queued) == (0, 0, 1)
    assert admission.service_ewma_s == pytest.approx(4.0)  # both held their slot 4 fake seconds
    admission.reset()
    assert admission.service_ewma_s is None and admission.queue_limit(20.0, None) == 1


def test_model_ids_resolve_like_bedrock() -> None:
    spec = resolve_model("global.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert spec.model_id == "anthropic.claude-haiku-4-5-20251001-v1:0" and spec.context_tokens == 200_000
    assert resolve_model("anthropic.claude-3-haiku-20240307-v1:0").max_output_tokens == 4096
    for bad, code in (
        ("anthropic.claude-haiku-4-5-20251001-v1:0", "ValidationException"),  # profile-only model, bare id
        ("us.anthropic.claude-3-haiku-20240307-v2:0", "ResourceNotFoundException"),
        (
            "arn:aws:bedrock:us-east-1:1:inference-profile/anthropic.claude-3-haiku-20240307-v1:0",
            "ResourceNotFoundException",
        ),
        ("arn:aws:s3:::bucket/x", "ResourceNotFoundException"),
    ):
        with pytest.raises(BedrockError) as err:
            resolve_model(bad)
        assert err.value.code == code, bad
    assert resolve_model("x.y", ("x.y",)).model_id == "x.y"


def test_knob_flags_round_trip_to_a_server_command_line() -> None:
    from devstack.bedrock.__main__ import build_parser
    from devstack.bedrock.options import knob_argv, knobs_from_args

    argv = ["--allow-model-id", "a.b", "--allow-model-id", "c.d", "--max-queue", "0", "--queue-timeout-s", "0"]
    argv += [
        "--auth-error",
        "UnrecognizedClientException",
        "--context-tokens",
        "4096",
        "--shed-with",
        "ModelNotReadyException",
    ]
    knobs = knobs_from_args(build_parser().parse_args(argv))
    assert knobs.extra_model_ids == ("a.b", "c.d") and knobs.max_queue == 0 and knobs.queue_timeout_s == 0.0
    passed_on = knob_argv(build_parser().parse_args(argv))
    assert knobs_from_args(build_parser().parse_args(passed_on)) == knobs
    assert knob_argv(build_parser().parse_args([])) == []  # defaults are not repeated


def test_backend_slots_come_from_the_backend() -> None:
    from types import SimpleNamespace

    from devstack.bedrock.backends import backend_slots
    from devstack.bedrock.backends.lexicon import LexiconBackend

    assert backend_slots(LexiconBackend()) == 0  # unlimited: nothing queues, nothing is shed
    assert backend_slots(SimpleNamespace(parallel=3)) == 3  # llama.cpp's slot count (the llm backend)
    assert backend_slots(SimpleNamespace(slots=2, parallel=3)) == 2
