"""At start: is the configured model still ACTIVE on Bedrock? One line when it is not, naming the fix.

Bedrock retires models on a schedule: a model turns LEGACY, then reaches its end of life, after which every
request fails. GetFoundationModel (the `bedrock` control plane, not `bedrock-runtime`) says where the
configured model stands. It takes a foundation-model id, so an inference profile's geography prefix
(`us.`, `global.`...) is stripped; an application inference profile's ARN does not name its model and is
not checked. The check never stops the flow and never costs a review: a missing `bedrock:GetFoundationModel`
permission or an unreachable control plane is one warning, and the flow goes on. BEDROCK_CHECK_LIFECYCLE=false
skips it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from typing import Any, Literal

import boto3
from botocore.config import Config

from dataflow.enrich.catalog import HAIKU_45, card_for
from dataflow.logging_setup import configure_logging
from dataflow.settings import Settings, SettingsError, load_settings

MODULE = "dataflow.enrich.lifecycle"  # also its logger, when it runs as `python -m` (then __name__ is __main__)
log = logging.getLogger(MODULE)

PROFILE_PREFIXES = ("us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")
Status = Literal["ACTIVE", "LEGACY", "unknown", "unchecked"]


def foundation_model_id(model_id: str) -> str | None:
    """The foundation-model id behind a model id, a system inference profile id, or either's ARN."""
    if model_id.startswith("arn:"):
        kind, _, ident = model_id.split(":", 5)[-1].partition("/")
        if kind == "foundation-model":
            return ident
        if kind != "inference-profile":
            return None  # an application inference profile: its model is not in its name
        model_id = ident
    for prefix in PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return model_id[len(prefix) :]
    return model_id


def recommended_replacement(model_id: str) -> str:
    """The model the table recommends instead of `model_id` (README's model table says why)."""
    return card_for(model_id).replacement or HAIKU_45


def bedrock_control_client(settings: Settings) -> Any:
    """A quick-failing `bedrock` client: the check must not hold up the start."""
    config = Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.client("bedrock", region_name=settings.aws_region, config=config)


def check_model_lifecycle(settings: Settings, client: Any | None = None) -> Status:
    """Log where the configured model stands; returns its status ("unknown" when it could not be read)."""
    if not settings.bedrock_check_lifecycle:
        return "unchecked"
    base = foundation_model_id(settings.bedrock_model_id)
    if base is None:
        log.info("bedrock.model_lifecycle model=%s status=unchecked (application profile)", settings.bedrock_model_id)
        return "unchecked"
    try:
        details = (client or bedrock_control_client(settings)).get_foundation_model(modelIdentifier=base)
        lifecycle = details["modelDetails"].get("modelLifecycle", {})
    except Exception as exc:  # the check is advice: it never stops the flow
        log.warning(
            "bedrock.model_lifecycle model=%s status=unknown error=%s (grant bedrock:GetFoundationModel on the "
            "model, or set BEDROCK_CHECK_LIFECYCLE=false)",
            base,
            type(exc).__name__,
        )
        return "unknown"
    status = str(lifecycle.get("status", "unknown"))
    if status == "ACTIVE":
        log.info("bedrock.model_lifecycle model=%s status=ACTIVE", base)
        return "ACTIVE"
    end = lifecycle.get("endOfLifeTime")
    log.warning(
        "bedrock.model_lifecycle model=%s status=%s end_of_life=%s: requests fail after its end of life; set "
        "BEDROCK_MODEL_ID to an ACTIVE model, recommended: %s (check its answers first: README, 'Choosing the "
        "model')",
        base,
        status,
        end.isoformat() if hasattr(end, "isoformat") else end or "not announced",
        recommended_replacement(settings.bedrock_model_id),
    )
    return "LEGACY" if status == "LEGACY" else "unknown"


def check_in_background(settings: Settings) -> subprocess.Popen | None:
    """Run the check in a child process (`python -m dataflow.enrich.lifecycle`, the same environment) beside the
    flow's start. It only advises, and botocore's `bedrock` client takes ~0.4 s of CPU to build (boto3, the
    service model): on the flow's start path, or in a thread holding the flow's interpreter lock, that delayed
    the first reviews by ~0.5 s (issue 19's start-up latency). A thread reaps the child; it blocks, never spins."""
    if not settings.bedrock_check_lifecycle:
        return None
    try:
        child = subprocess.Popen([sys.executable, "-m", MODULE], stdin=subprocess.DEVNULL)
    except OSError as exc:
        log.warning("bedrock.model_lifecycle status=unknown error=%s (the check could not start)", exc)
        return None
    threading.Thread(target=child.wait, name="model-lifecycle", daemon=True).start()
    return child


def main() -> int:
    """`python -m dataflow.enrich.lifecycle`: the check alone, with the flow's settings; exit 0 unless ACTIVE is
    known to be false (1) or a setting is invalid (2), so an operator can run it before a deploy too."""
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"reviewstream: invalid setting {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return 1 if check_model_lifecycle(settings) == "LEGACY" else 0


if __name__ == "__main__":
    sys.exit(main())
