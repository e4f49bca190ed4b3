"""Entry point: `python -m bytewax.run dataflow.flow` builds the pipeline from environment settings.

A missing or malformed setting stops the process here with one line naming it.
"""

from __future__ import annotations

import logging

from dataflow.enrich.lifecycle import check_in_background
from dataflow.logging_setup import configure_logging
from dataflow.metrics import start_metrics_server
from dataflow.pipeline import build_flow
from dataflow.settings import SettingsError, load_settings

try:
    settings = load_settings()
except SettingsError as err:
    raise SystemExit(f"reviewstream: invalid setting {err}") from None

configure_logging(settings.log_level)
start_metrics_server(settings.metrics_port)
logging.getLogger(__name__).info(
    "flow.start stream=%s model=%s concurrency=%d reviews_per_request=%d opensearch=%s",
    settings.kinesis_stream_name,
    settings.bedrock_model_id,
    settings.bedrock_max_concurrency,
    settings.bedrock_reviews_per_request,
    settings.opensearch_url,
)
check_in_background(settings)
flow = build_flow(settings)
