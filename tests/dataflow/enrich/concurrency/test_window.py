"""The window: the smallest of its limits, throttles handled once per event."""

from __future__ import annotations

from dataflow.enrich.concurrency.window import Window
from tests.dataflow.helpers import settings


def test_the_effective_window_is_the_smallest_limit() -> None:
    window = Window.from_settings(settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_INITIAL_CONCURRENCY=4))
    assert window.current == 4 and window.gradient is not None
    window.gradient.value = 16
    window.aimd.on_throttle(0.0)
    assert window.current == 8
    pinned = Window.from_settings(settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_ADAPTIVE="false"))
    assert pinned.current == 16 and pinned.gradient is None and pinned.pacer is None


def test_every_limit_takes_one_outcome_call() -> None:
    """The Limit interface: a Sample in, a cut flag out; each limit answers only its own kind of congestion."""
    from dataflow.enrich.concurrency.aimd import AimdLimit
    from dataflow.enrich.concurrency.gradient import GradientLimit
    from dataflow.enrich.concurrency.limit import Outcome, Sample
    from dataflow.enrich.concurrency.pacer import RatePacer

    aimd, gradient, pacer = AimdLimit(8), GradientLimit(8, initial=4), RatePacer()
    throttle, timeout = Sample(Outcome.THROTTLE, started=0.0), Sample(Outcome.TIMEOUT, started=0.0)
    assert aimd.on_sample(throttle) and aimd.current == 4
    assert not aimd.on_sample(timeout) and aimd.current == 4  # timeouts are the gradient's
    assert not gradient.on_sample(throttle) and gradient.current == 4  # throttles are AIMD's and the pacer's
    assert gradient.on_sample(timeout) and gradient.current == 2
    assert pacer.on_sample(throttle) and pacer.delay() > 0 and pacer.current is None  # one throttle only pauses
    assert not pacer.on_sample(timeout)


def test_a_burst_of_throttles_cuts_the_window_once() -> None:
    window = Window.from_settings(settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_INITIAL_CONCURRENCY=16))
    from dataflow.enrich.concurrency.limit import Outcome, Sample

    cuts = [window.on_sample(Sample(Outcome.THROTTLE, started=0.0)) for _ in range(5)]  # all sent before the cut
    assert cuts == [True, False, False, False, False] and window.aimd.current == 8
    pinned = Window.from_settings(settings(BEDROCK_MAX_CONCURRENCY=16, BEDROCK_ADAPTIVE="false"))
    assert not pinned.on_sample(Sample(Outcome.THROTTLE, started=0.0)) and pinned.current == 16
