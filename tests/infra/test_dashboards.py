"""The shipped OpenSearch Dashboards saved objects: well-formed, self-contained, on the documented fields."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "deploy" / "dashboards" / "reviewstream.ndjson"
OUTPUT_FIELDS = {
    "review_id", "user_id", "date_time", "summary", "sentiment", "label", "model_id", "input_tokens",
    "output_tokens", "latency_ms", "attempts", "processed_at", "shard_id", "sequence_number",
}  # fmt: skip
DLQ_FIELDS = {"stage", "error_type", "error", "raw", "shard_id", "sequence_number", "attempts", "failed_at"}


def load() -> list[dict]:
    return [json.loads(line) for line in NDJSON.read_text().splitlines() if line.strip()]


def test_objects_are_unique_and_references_resolve() -> None:
    objects = load()
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(keys) == len(set(keys))
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in keys, (obj["id"], ref)


def test_index_patterns_match_the_indices() -> None:
    patterns = {o["attributes"]["title"]: o["attributes"] for o in load() if o["type"] == "index-pattern"}
    assert patterns["processed_reviews"]["timeFieldName"] == "processed_at"
    assert patterns["processed_reviews_dlq"]["timeFieldName"] == "failed_at"


def test_visualizations_use_documented_fields() -> None:
    by_index = {"reviewstream-processed-reviews": OUTPUT_FIELDS, "reviewstream-processed-reviews-dlq": DLQ_FIELDS}
    titles = set()
    for obj in load():
        if obj["type"] != "visualization":
            continue
        state = json.loads(obj["attributes"]["visState"])
        titles.add(state["title"])
        (ref,) = obj["references"]
        for agg in state["aggs"]:
            field = agg["params"].get("field")
            assert field is None or field in by_index[ref["id"]], (state["title"], field)
    assert titles >= {
        "Reviews processed", "Sentiment share", "Sentiment over time", "Dead letters by reason",
        "Accuracy where labels exist",
    }  # fmt: skip


def test_sentiment_over_time_and_dead_letters_are_bucketed_as_specified() -> None:
    states = {
        json.loads(o["attributes"]["visState"])["title"]: json.loads(o["attributes"]["visState"])
        for o in load()
        if o["type"] == "visualization"
    }
    over_time = {a["type"]: a["params"].get("field") for a in states["Sentiment over time"]["aggs"]}
    assert over_time["date_histogram"] == "processed_at"
    dead = [a["params"]["field"] for a in states["Dead letters by reason"]["aggs"] if a["type"] == "terms"]
    assert dead == ["error_type", "stage"]


def test_dashboard_contains_every_panel() -> None:
    objects = load()
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r["id"] for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == set(refs)
    others = {o["id"] for o in objects if o["type"] in ("visualization", "search")}
    assert set(refs.values()) == others


def test_import_script_posts_to_the_saved_objects_api() -> None:
    script = (ROOT / "deploy" / "import-dashboards.sh").read_text()
    assert "_dashboards/api/saved_objects/_import?overwrite=true" in script
    assert "osd-xsrf: true" in script
    assert "dashboards/reviewstream.ndjson" in script
