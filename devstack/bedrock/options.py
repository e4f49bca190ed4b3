"""The knob flags shared by `python -m devstack.bedrock` and `python -m devstack up` (no aiohttp needed)."""

from __future__ import annotations

import argparse

from devstack.bedrock.errors import ERROR_STATUS
from devstack.bedrock.faults import AUTH_ERRORS, SHED_ERRORS, Knobs, LatencyDistribution


def add_knob_arguments(p: argparse.ArgumentParser) -> None:
    """The Knobs fields as flags; shared with `python -m devstack up`."""
    g = p.add_argument_group("knobs (also changeable at run time: POST /_admin/config)")
    g.add_argument("--latency-ms", type=float, default=0.0, help="fixed added latency per request")
    g.add_argument(
        "--latency-mean-ms", type=float, default=0.0, help="random added latency, mean (see --latency-distribution)"
    )
    g.add_argument(
        "--latency-distribution",
        choices=[d.value for d in LatencyDistribution],
        default=Knobs.latency_distribution.value,
        help="how --latency-mean-ms is drawn per request (default: %(default)s)",
    )
    g.add_argument("--latency-median-ms", type=float, default=0.0, help="lognormal added latency, median")
    g.add_argument("--latency-sigma", type=float, default=0.0, help="lognormal sigma (0.5: p99 about 3x p50)")
    g.add_argument("--latency-per-output-token-ms", type=float, default=0.0)
    g.add_argument("--throttle-rate", type=float, default=0.0, help="probability of a 429 ThrottlingException")
    g.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500/503")
    g.add_argument("--timeout-rate", type=float, default=0.0, help="probability of hold then 408")
    g.add_argument("--timeout-hold-s", type=float, default=10.0)
    g.add_argument("--malformed-rate", type=float, default=0.0, help="probability of a contract-breaking 200")
    g.add_argument("--fail-with", choices=sorted(ERROR_STATUS), default=None)
    g.add_argument("--rpm", type=int, default=0, help="requests-per-minute quota (0 = none)")
    g.add_argument("--tpm", type=int, default=0, help="tokens-per-minute quota (0 = none)")
    g.add_argument(
        "--output-burndown",
        type=int,
        default=0,
        help="quota tokens per output token (0 = the model's: 5 for the Claude 4 generation and 3.7 Sonnet)",
    )
    g.add_argument(
        "--max-concurrency", type=int, default=0, help="backend calls at once (0 = the backend's slots, or unlimited)"
    )
    g.add_argument(
        "--queue-timeout-s",
        type=float,
        default=Knobs.queue_timeout_s,
        help="shed (429 at once) requests that could not finish within this many seconds given the measured "
        "service time (default: %(default)s; 0 = unbounded queue, never shed)",
    )
    g.add_argument("--max-queue", type=int, default=None, help="explicit cap on requests waiting for a slot")
    g.add_argument("--shed-with", choices=SHED_ERRORS, default=Knobs.shed_with, help="the error shed requests get")
    g.add_argument("--auth-error", choices=AUTH_ERRORS, default=None, help="answer every request with this 403")
    g.add_argument("--context-tokens", type=int, default=0, help="context window (0 = the model's, 200k)")
    g.add_argument(
        "--allow-model-id",
        dest="extra_model_ids",
        action="append",
        default=[],
        metavar="ID",
        help="accept this model id too (repeatable); unknown ids get 404 ResourceNotFoundException",
    )
    g.add_argument(
        "--legacy-model-id",
        dest="legacy_model_ids",
        action="append",
        default=[],
        metavar="ID",
        help="report this foundation-model id as LEGACY in GetFoundationModel (repeatable)",
    )
    g.add_argument(
        "--schema-compile-ms",
        type=float,
        default=0.0,
        help="delay of the first request with a new structured-output schema (Bedrock compiles a grammar; cached 24 h)",
    )
    g.add_argument("--seed", type=int, default=None)


KNOB_FLAGS = (
    "latency_ms",
    "latency_mean_ms",
    "latency_distribution",
    "latency_median_ms",
    "latency_sigma",
    "latency_per_output_token_ms",
    "throttle_rate",
    "error_rate",
    "timeout_rate",
    "timeout_hold_s",
    "malformed_rate",
    "fail_with",
    "rpm",
    "tpm",
    "output_burndown",
    "max_concurrency",
    "queue_timeout_s",
    "max_queue",
    "shed_with",
    "auth_error",
    "context_tokens",
    "extra_model_ids",
    "legacy_model_ids",
    "schema_compile_ms",
    "seed",
)


def knobs_from_args(args: argparse.Namespace) -> Knobs:
    return Knobs(**{name: getattr(args, name) for name in KNOB_FLAGS})  # lists become tuples in Knobs


def knob_argv(args: argparse.Namespace) -> list[str]:
    """The knob flags that differ from the defaults, to pass `args` on to a server process."""
    defaults = Knobs().to_dict()
    out: list[str] = []
    for name in KNOB_FLAGS:
        value = getattr(args, name, None)
        if name in ("extra_model_ids", "legacy_model_ids"):
            flag = "--allow-model-id" if name == "extra_model_ids" else "--legacy-model-id"
            for model_id in value or ():
                out += [flag, model_id]
        elif value is not None and value != defaults[name]:
            out += ["--" + name.replace("_", "-"), str(value)]
    return out
