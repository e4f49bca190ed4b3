"""Bulk chunking."""

from __future__ import annotations

ARRIVAL = 1_700_000_000_000
LONG_ID = "é" * 300  # 300 characters (valid for the parser's character limit), 600 bytes in UTF-8


def test_chunks_respect_both_bounds_and_keep_order() -> None:
    from dataflow.opensearch_sink.bulk import chunks

    sizes = {"a": 400, "b": 400, "c": 300, "d": 2000, "e": 10, "f": 10, "g": 10}
    assert chunks(sizes, max_docs=2, max_bytes=1000) == [["a", "b"], ["c"], ["d"], ["e", "f"], ["g"]]
    assert chunks(sizes, max_docs=10, max_bytes=1000) == [["a", "b"], ["c"], ["d"], ["e", "f", "g"]]
