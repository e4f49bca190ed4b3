"""The knob flags shared by `python -m devstack.bedrock` and `python -m devstack up` (no aiohttp needed)."""

from __future__ import annotations

import argparse

from devstack.bedrock.errors import ERROR_STATUS
from devstack.bedrock.faults import Knobs


def add_knob_arguments(p: argparse.ArgumentParser) -> None:
    """The Knobs fields as flags; shared with `python -m devstack up`."""
    g = p.add_argument_group("knobs (also changeable at run time: POST /_admin/config)")
    g.add_argument("--latency-ms", type=float, default=0.0, help="fixed added latency per request")
    g.add_argument("--latency-median-ms", type=float, default=0.0, help="lognormal added latency, median")
    g.add_argument("--latency-sigma", type=float, default=0.0, help="lognormal sigma")
    g.add_argument("--latency-per-output-token-ms", type=float, default=0.0)
    g.add_argument("--throttle-rate", type=float, default=0.0, help="probability of a 429 ThrottlingException")
    g.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500/503")
    g.add_argument("--timeout-rate", type=float, default=0.0, help="probability of hold then 408")
    g.add_argument("--timeout-hold-s", type=float, default=10.0)
    g.add_argument("--malformed-rate", type=float, default=0.0, help="probability of a contract-breaking 200")
    g.add_argument("--fail-with", choices=sorted(ERROR_STATUS), default=None)
    g.add_argument("--rpm", type=int, default=0, help="requests-per-minute quota (0 = none)")
    g.add_argument("--tpm", type=int, default=0, help="tokens-per-minute quota (0 = none)")
    g.add_argument("--max-concurrency", type=int, default=0, help="backend calls at once (0 = unlimited)")
    g.add_argument("--seed", type=int, default=None)


KNOB_FLAGS = (
    "latency_ms",
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
    "max_concurrency",
    "seed",
)


def knobs_from_args(args: argparse.Namespace) -> Knobs:
    return Knobs(**{name: getattr(args, name) for name in KNOB_FLAGS})


def knob_argv(args: argparse.Namespace) -> list[str]:
    """The knob flags that differ from the defaults, to pass `args` on to a server process."""
    defaults = argparse.Namespace(**Knobs().to_dict())
    out: list[str] = []
    for name in KNOB_FLAGS:
        value = getattr(args, name, None)
        if value != getattr(defaults, name):
            out += ["--" + name.replace("_", "-"), str(value)]
    return out
