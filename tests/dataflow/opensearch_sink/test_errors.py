"""What an OpenSearch item answer means."""

from __future__ import annotations

from typing import Any

ARRIVAL = 1_700_000_000_000
LONG_ID = "é" * 300  # 300 characters (valid for the parser's character limit), 600 bytes in UTF-8


def test_item_outcomes_are_classified_by_status_and_type() -> None:
    from dataflow.opensearch_sink.errors import FailureKind, classify_item

    def item(status: int, error_type: str | None = None) -> dict[str, Any]:
        return {"status": status, **({"error": {"type": error_type, "reason": "x"}} if error_type else {})}

    assert classify_item(item(201)).kind is FailureKind.STORED
    assert classify_item(item(409, "version_conflict_engine_exception")).kind is FailureKind.CONFLICT
    assert classify_item(item(429, "es_rejected_execution_exception")).kind is FailureKind.RETRY
    assert classify_item(item(404, "index_not_found_exception")).kind is FailureKind.MISSING_INDEX
    assert classify_item(item(400, "mapper_parsing_exception")).kind is FailureKind.REJECT
