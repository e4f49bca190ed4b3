"""The version arithmetic of enrichment generations (dataflow/opensearch_sink/generation.py), and its setting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflow.opensearch_sink import generation as gen
from dataflow.opensearch_sink.generation import (
    MAX_ARRIVAL_MS,
    MAX_GENERATION,
    Conflict,
    ConflictKind,
    Generation,
    VersionError,
    external_version,
    split_version,
)
from dataflow.settings import SettingsError, load_settings

generations = st.integers(min_value=0, max_value=MAX_GENERATION)
arrivals = st.integers(min_value=0, max_value=MAX_ARRIVAL_MS)


@given(generations, arrivals, generations, arrivals)
def test_versions_order_as_generation_then_arrival(g1: int, a1: int, g2: int, a2: int) -> None:
    v1, v2 = external_version(g1, a1), external_version(g2, a2)
    assert (v1 < v2) == ((g1, a1) < (g2, a2)) and (v1 == v2) == ((g1, a1) == (g2, a2))
    assert split_version(v1) == (g1, a1)
    assert 0 <= v1 <= gen.MAX_VERSION < gen.OPENSEARCH_MAX_VERSION


@given(arrivals)
def test_a_version_written_before_generations_is_generation_zero(arrival: int) -> None:
    """Today's documents carry version = arrival ms: exactly generation 0, below every generation 1 version."""
    assert split_version(arrival) == (0, arrival)
    assert external_version(0, arrival) == arrival
    assert arrival < external_version(1, 0)


def test_the_bounds_reach_2109_and_are_refused_beyond_with_a_clear_error() -> None:
    assert gen.LAST_ARRIVAL.year == 2109
    assert external_version(MAX_GENERATION, MAX_ARRIVAL_MS) == gen.MAX_VERSION
    with pytest.raises(VersionError, match=r"generation 1000001 is outside 0\.\.1000000 \(ENRICHMENT_GENERATION\)"):
        external_version(MAX_GENERATION + 1, 0)
    with pytest.raises(VersionError, match="generation -1 is outside"):
        external_version(-1, 0)
    with pytest.raises(VersionError, match=r"arrival time 4398046511104 ms is outside .* to 2109-05-15"):
        external_version(0, MAX_ARRIVAL_MS + 1)
    with pytest.raises(VersionError, match="arrival time -1 ms"):
        external_version(3, -1)
    with pytest.raises(VersionError):
        Generation(MAX_GENERATION + 1)


def reason(stored: int, provided: int) -> str:
    """OpenSearch's 409 reason, as osmem and the service word it."""
    return f"[r1]: version conflict, current version [{stored}] is higher or equal to the one provided [{provided}]"


def test_a_conflict_is_a_replay_a_supersession_or_a_result_that_should_have_replaced() -> None:
    ours = external_version(2, 1_700_000_000_000)
    same = Conflict.of(reason(ours, ours), 2)
    assert same == Conflict(ConflictKind.REPLAY, ours)
    newer_record = Conflict.of(reason(external_version(2, 1_700_000_000_500), ours), 2)
    assert newer_record.kind is ConflictKind.REPLAY
    newer_generation = Conflict.of(reason(external_version(3, 0), ours), 2)
    assert newer_generation.kind is ConflictKind.SUPERSEDED
    # Only a stored version from another scheme can name an older generation: never counted as stored.
    assert Conflict.of(reason(external_version(1, MAX_ARRIVAL_MS), ours), 2).kind is ConflictKind.NOT_REPLACED
    assert Conflict.of("version conflict", 2) == Conflict(ConflictKind.REPLAY, None)  # unreadable: as before


def test_the_generation_fields_name_the_prompt_and_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = Generation(4).fields()
    assert fields == {"generation": 4, "prompt_version": gen.PROMPT_VERSION, "schema_version": 2}
    assert len(gen.PROMPT_VERSION) == 12
    from dataflow.enrich import prompt

    monkeypatch.setattr(prompt, "SYSTEM_PROMPT", prompt.SYSTEM_PROMPT + " Be brief.")
    assert gen._prompt_fingerprint() != gen.PROMPT_VERSION  # a prompt change shows in the data by itself


def test_enrichment_generation_setting() -> None:
    assert load_settings({}).enrichment_generation == 0
    assert load_settings({"ENRICHMENT_GENERATION": "7"}).enrichment_generation == 7
    with pytest.raises(SettingsError, match=r"ENRICHMENT_GENERATION: 1000001 must be between 0 and 1000000"):
        load_settings({"ENRICHMENT_GENERATION": "1000001"})
    with pytest.raises(SettingsError, match="ENRICHMENT_GENERATION: 'two' is not an integer"):
        load_settings({"ENRICHMENT_GENERATION": "two"})
