"""The records and the documents they become."""

from __future__ import annotations

from dataflow.parse import parse_record
from dataflow.records import DeadLetter
from tests.dataflow.helpers import raw_record


def test_dead_letter_truncates_raw() -> None:
    letter = parse_record(raw_record(1, b"x" * 10_000), 1000)
    assert isinstance(letter, DeadLetter) and letter.error_type == "invalid_json"
    assert len(letter.raw) < 4200 and letter.raw.endswith("[truncated]")
