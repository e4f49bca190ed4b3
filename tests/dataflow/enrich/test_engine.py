"""The per-worker engine."""

from __future__ import annotations


def test_reference_behaviour_is_not_adaptive() -> None:
    from dataflow.enrich.engine import EnrichEngine
    from tests.dataflow.helpers import settings as make_settings
    from tests.fakes import FakeBedrock

    engine = EnrichEngine(make_settings(BEDROCK_ADAPTIVE="false"), FakeBedrock().factory(), worker="t")
    try:
        window = engine.window
        assert window.pacer is None and window.aimd.minimum == window.aimd.maximum == 8
        window.aimd.on_throttle(request_started=1e12)
        assert window.current == 8
    finally:
        engine.close()
