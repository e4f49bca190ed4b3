"""The answer schema's one-sentence `pattern`: never looser than the dataflow's check, within Bedrock's subset."""

from __future__ import annotations

import re

import orjson
from hypothesis import given
from hypothesis import strategies as st

from dataflow.enrich.prompt import is_one_sentence
from dataflow.enrich.schema import SUMMARY_PATTERN, answer_schema, output_config


@given(st.from_regex(SUMMARY_PATTERN, fullmatch=True))
def test_every_summary_the_pattern_admits_is_one_sentence(summary: str) -> None:
    # Constrained decoding only writes what the pattern admits; the validator must accept all of it that is not
    # blank (an all-space summary is left to the validator's empty check).
    assert summary.strip() == "" or summary.strip() in ".!?" or is_one_sentence(summary)


def test_the_pattern_refuses_what_the_llm_backend_wrote_under_the_old_schema() -> None:
    pattern = re.compile(SUMMARY_PATTERN)
    assert pattern.fullmatch("The film is a slow, sad drama about loss.")
    for two in ("The film is slow. It is also sad.", "Great!\nLoved it.", "No sentence end"):
        assert not pattern.fullmatch(two)


def test_the_schema_sent_carries_the_pattern_once_for_all_ids() -> None:
    text = output_config(8)["textFormat"]["structure"]["jsonSchema"]["schema"]
    assert text.count("pattern") == 1  # in the shared $defs entry: the schema is input the model pays for
    entry = answer_schema(8)["$defs"]["entry"]["properties"]["summary"]
    assert entry["pattern"] == orjson.loads(text)["$defs"]["entry"]["properties"]["summary"]["pattern"]
    # Bedrock refuses string-length constraints and large {n,m} ranges: the schema uses neither.
    assert "minLength" not in text and "maxLength" not in text and "{" not in SUMMARY_PATTERN


def test_the_flow_packing_eight_enriches_every_review_once() -> None:
    from tests.dataflow.helpers import ids, record, run_flow, settings
    from tests.fakes import FakeBedrock

    bedrock = FakeBedrock()
    # No audit: its requests are billed (the cost metric) but charged to no review (test_audit.py)
    cfg = settings(BEDROCK_REVIEWS_PER_REQUEST=8, BEDROCK_PACKING_AUDIT_EVERY=0)
    results, dead = run_flow([record(n) for n in range(50)], bedrock, cfg)
    assert dead == [] and sorted(ids(results)) == sorted(f"r{n}" for n in range(50))
    assert bedrock.calls < 50  # reviews shared requests
    assert sum(r.input_tokens for r in results) == bedrock.input_tokens  # each token charged to one review
