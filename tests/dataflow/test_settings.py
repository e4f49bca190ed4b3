"""Settings: defaults, malformed values named, the flow refusing a bad environment at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dataflow.settings import SettingsError, load_settings


def test_defaults_are_documented_values() -> None:
    s = load_settings({})
    assert s.kinesis_stream_name == "reviews" and s.kinesis_start_position.kind == "TRIM_HORIZON"
    assert s.bedrock_model_id.startswith("us.anthropic.claude-haiku")
    assert (s.bedrock_reviews_per_request, s.bedrock_service_tier, s.bedrock_structured_output) == (
        1,
        "default",
        "auto",
    )
    assert s.opensearch_index == "processed_reviews" and s.opensearch_dlq_index == "processed_reviews_dlq"
    assert s.max_buffered_reviews == 4 * s.bedrock_max_concurrency * s.bedrock_reviews_per_request
    assert (s.bedrock_packing_audit_every, s.bedrock_packing_min_agreement) == (50, 0.97)
    assert s.enrich_local_key_tries is None  # auto: channels/routes.py decides from the stream and the cluster
    assert load_settings({"ENRICH_LOCAL_KEY_TRIES": "Auto"}).enrich_local_key_tries is None
    assert load_settings({"ENRICH_LOCAL_KEY_TRIES": "1"}).enrich_local_key_tries == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BEDROCK_MAX_CONCURRENCY": "many"}, "BEDROCK_MAX_CONCURRENCY: 'many' is not an integer"),
        ({"BEDROCK_MAX_CONCURRENCY": "0"}, "BEDROCK_MAX_CONCURRENCY: 0 must be between 1 and 1024"),
        ({"OPENSEARCH_AUTH": "basic"}, "OPENSEARCH_AUTH"),
        ({"OPENSEARCH_URL": "localhost:9200"}, "OPENSEARCH_URL"),
        ({"KINESIS_START_POSITION": "AT_TIMESTAMP:soon"}, "KINESIS_START_POSITION"),
        ({"KINESIS_STOP_AT_END": "maybe"}, "KINESIS_STOP_AT_END"),
        ({"BEDROCK_TIMEOUT_S": "-1"}, "BEDROCK_TIMEOUT_S"),
        ({"OPENSEARCH_REFRESH_INTERVAL": "fast"}, "OPENSEARCH_REFRESH_INTERVAL: 'fast' is not a time value"),
        ({"OPENSEARCH_REFRESH_INTERVAL": "0.2s"}, "OPENSEARCH_REFRESH_INTERVAL"),
        ({"ENRICH_LOCAL_KEY_TRIES": "always"}, "ENRICH_LOCAL_KEY_TRIES: 'always' is not 'auto' or a number"),
        ({"ENRICH_LOCAL_KEY_TRIES": "0"}, "ENRICH_LOCAL_KEY_TRIES: '0' is not 'auto'"),
        ({"ENRICH_LOCAL_KEY_TRIES": "65"}, "ENRICH_LOCAL_KEY_TRIES"),
        ({"ENRICH_LOCAL_KEY_TRIES": "²"}, "ENRICH_LOCAL_KEY_TRIES: '²' is not 'auto'"),
        ({"BEDROCK_PACKING_MIN_AGREEMENT": "97"}, "BEDROCK_PACKING_MIN_AGREEMENT: 97.0 must be between 0 and 1"),
        ({"BEDROCK_PACKING_AUDIT_EVERY": "-1"}, "BEDROCK_PACKING_AUDIT_EVERY"),
    ],
)
def test_bad_settings_name_the_variable(env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_at_timestamp_start_position() -> None:
    s = load_settings({"KINESIS_START_POSITION": "AT_TIMESTAMP:2024-05-01T12:00:00Z"})
    assert s.kinesis_start_position.kind == "AT_TIMESTAMP"
    assert s.kinesis_start_position.timestamp is not None and s.kinesis_start_position.timestamp.hour == 12


def test_flow_module_fails_at_start_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import dataflow.flow"],
        env={"BEDROCK_MAX_ATTEMPTS": "zero", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "reviewstream: invalid setting BEDROCK_MAX_ATTEMPTS: 'zero' is not an integer"
