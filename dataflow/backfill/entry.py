"""`python -m bytewax.run dataflow.backfill`: settings from the environment, the flow built from them.

A missing or malformed setting, or a model the backfill cannot address, stops here with one line naming it.
"""

from __future__ import annotations

import logging

from bytewax.dataflow import Dataflow

from dataflow.backfill.flow import build_backfill
from dataflow.backfill.requests import UnsupportedModel, check_model
from dataflow.logging_setup import configure_logging
from dataflow.metrics import start_metrics_server
from dataflow.settings import SettingsError, load_backfill_settings, load_settings


def build_from_environment() -> Dataflow:
    try:
        settings = load_settings()
        backfill = load_backfill_settings()
        check_model(settings.bedrock_model_id)
    except (SettingsError, UnsupportedModel) as err:
        raise SystemExit(f"reviewstream: invalid setting {err}") from None
    configure_logging(settings.log_level)
    start_metrics_server(settings.metrics_port)
    logging.getLogger(__name__).info("backfill.settings %s", backfill)
    return build_backfill(settings, backfill)
