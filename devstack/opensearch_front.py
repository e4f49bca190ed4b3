"""A strict front for osmem-server: Amazon OpenSearch Service's edges on a local, forgiving engine.

    python -m devstack.opensearch_front --port 0 --ready-file /tmp/front.json

starts osmem-server as its child (on a port osmem picks), listens in front of it and forwards every request
that passes the checks of `devstack.opensearch_strict`, in the service's order: payload size (413, the
domain's load balancer), SigV4 signature and clock (403), role mapping (403 `security_exception`), request
validation (400). osmem itself supports external versioning (409 `version_conflict_engine_exception` per
item), so the front leaves that to it.

Knobs, settable at run time: `POST /_front/config` with any of `max_body_bytes`, `deny_access` (bool),
`deny_for_s` (an "access not yet mapped" window from now), `deny_only` (deny just these action names, e.g.
`["indices:data/write/bulk"]`: a role mapped without write permission), `require_sigv4`, `clock_offset_s` (the front's
clock, to simulate a skewed client), `secrets` ({access key: secret key}), `role_arn`. `GET /_front/stats`
counts what was forwarded and what was refused, by kind. Index names cannot start with `_`, so `/_front`
never shadows an OpenSearch route.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from devstack.opensearch_strict import (
    Rejection,
    access_denied,
    action_name,
    check_ids,
    decoded_body,
    too_large,
    verify_sigv4,
)

log = logging.getLogger(__name__)

SMALL_INSTANCE_LIMIT = 10 * 1024 * 1024  # t3/m5.large and smaller: 10 MiB; larger types: 100 MiB
READ_LIMIT = 256 * 1024 * 1024  # what the front reads before answering 413 itself
HOP_HEADERS = frozenset({"host", "connection", "transfer-encoding", "content-length", "keep-alive"})


@dataclass
class FrontConfig:
    max_body_bytes: int = SMALL_INSTANCE_LIMIT
    deny_access: bool = False
    deny_until: float = 0.0  # monotonic; set through `deny_for_s`
    deny_only: list[str] = field(default_factory=list)  # action names denied; empty: every action
    require_sigv4: bool = False
    clock_offset_s: float = 0.0
    secrets: dict[str, str] = field(default_factory=lambda: {"testing": "testing"})
    role_arn: str = "arn:aws:iam::123456789012:role/reviewstream-dataflow"

    def update(self, knobs: dict[str, Any]) -> None:
        for key, value in knobs.items():
            if key == "deny_for_s":
                self.deny_until = time.monotonic() + float(value)
            elif key in ("max_body_bytes",):
                self.max_body_bytes = int(value)
            elif key in ("deny_access", "require_sigv4"):
                setattr(self, key, bool(value))
            elif key == "clock_offset_s":
                self.clock_offset_s = float(value)
            elif key == "secrets":
                self.secrets = {str(k): str(v) for k, v in dict(value).items()}
            elif key == "deny_only":
                self.deny_only = [str(v) for v in value]
            elif key == "role_arn":
                self.role_arn = str(value)
            else:
                raise ValueError(f"unknown knob {key!r}")

    def denying(self, action: str) -> bool:
        if self.deny_only and action not in self.deny_only:
            return False
        return self.deny_access or time.monotonic() < self.deny_until

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)


@dataclass
class FrontState:
    upstream: str
    config: FrontConfig = field(default_factory=FrontConfig)
    initial: dict[str, Any] = field(default_factory=dict)  # what `/_front/reset` restores
    stats: Counter[str] = field(default_factory=Counter)
    session: aiohttp.ClientSession | None = None


def check(state: FrontState, request: web.Request, body: bytes) -> Rejection | None:
    """The service's checks in its order; None when the request may reach OpenSearch."""
    cfg = state.config
    try:
        decoded = decoded_body(request.headers, body)
    except (OSError, EOFError):
        decoded = body
    rejection = too_large(max(len(body), len(decoded)), cfg.max_body_bytes)
    if rejection is None and (cfg.require_sigv4 or "Authorization" in request.headers):
        rejection = verify_sigv4(request.method, request.raw_path, request.headers, body, cfg.secrets, cfg.now())
    if rejection is None and cfg.denying(action_name(request.method, request.raw_path)):
        rejection = access_denied(request.method, request.raw_path, cfg.role_arn)
    if rejection is None:
        rejection = check_ids(request.method, request.raw_path, decoded)
    return rejection


async def proxy(request: web.Request) -> web.StreamResponse:
    state: FrontState = request.app["state"]
    body = await request.read()
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        state.stats["gzip_requests"] += 1
    if "Authorization" in request.headers:
        state.stats["signed_requests"] += 1
    rejection = check(state, request, body)
    if rejection is not None:
        state.stats[f"rejected_{rejection.kind}"] += 1
        return web.Response(status=rejection.status, body=rejection.body, content_type="application/json")
    assert state.session is not None
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    state.stats["in_flight"] += 1
    try:
        async with state.session.request(
            request.method, state.upstream + request.raw_path, data=body or None, headers=headers
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
    except aiohttp.ClientError as err:
        state.stats["upstream_errors"] += 1
        log.warning("front.upstream_error error=%s", err)
        return web.Response(status=502, text="bad gateway")
    finally:
        state.stats["in_flight"] -= 1
    state.stats["forwarded"] += 1
    if "_bulk" in request.path:
        state.stats["forwarded_bulk"] += 1
    return web.Response(status=upstream.status, body=payload, headers=out)


async def get_stats(request: web.Request) -> web.Response:
    state: FrontState = request.app["state"]
    cfg = asdict(state.config)
    cfg.pop("secrets")
    return web.json_response({"upstream": state.upstream, "stats": dict(state.stats), "config": cfg}, dumps=_dumps)


async def post_config(request: web.Request) -> web.Response:
    state: FrontState = request.app["state"]
    try:
        state.config.update(orjson.loads(await request.read() or b"{}"))
    except (ValueError, TypeError) as err:
        return web.json_response({"error": str(err)}, status=400)
    return await get_stats(request)


async def post_reset(request: web.Request) -> web.Response:
    state: FrontState = request.app["state"]
    state.config = FrontConfig(**state.initial)
    state.stats.clear()
    return await get_stats(request)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_app(upstream: str, config: FrontConfig | None = None) -> web.Application:
    app = web.Application(client_max_size=READ_LIMIT)
    config = config or FrontConfig()
    state = FrontState(upstream.rstrip("/"), config, asdict(config))
    app["state"] = state

    async def session_ctx(app: web.Application) -> Any:
        state.session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_read=120)
        )
        yield
        await state.session.close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/_front/stats", get_stats)
    app.router.add_post("/_front/config", post_config)
    app.router.add_post("/_front/reset", post_reset)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def start_osmem(binary: str) -> tuple[subprocess.Popen, str]:
    """osmem-server on a port it picks (it prints its URL as JSON), exiting with this process."""
    argv = [binary, "--addr", "127.0.0.1:0", "--no-ja", "--no-stdin-watch", "--parent-pid", str(os.getpid())]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"osmem-server exited with code {proc.wait()} before reporting its address")
    return proc, str(orjson.loads(line)["url"])


async def serve(args: argparse.Namespace) -> None:
    osmem, upstream = start_osmem(args.osmem_bin)
    config = FrontConfig(max_body_bytes=args.max_body_bytes)
    # auto_decompress=False: the signature covers the body as sent (gzip), and osmem decodes it itself.
    runner = web.AppRunner(create_app(upstream, config), access_log=None, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://{args.host}:{port}"
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_bytes(orjson.dumps({"url": url, "upstream": upstream, "pid": os.getpid()}))
        tmp.replace(args.ready_file)  # atomic: a reader never sees half a file
    log.info("front.ready url=%s upstream=%s max_body_bytes=%d", url, upstream, args.max_body_bytes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.parent_pid:
        watcher = asyncio.create_task(_watch_parent(args.parent_pid, stop))
    try:
        await stop.wait()
    finally:
        if args.parent_pid:
            watcher.cancel()
        await runner.cleanup()
        osmem.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            osmem.wait(timeout=5)


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """Exit with the owner even when it is killed -9 (osmem does the same with this process)."""
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stop.set()
            return
        except PermissionError:
            pass
        await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    from osmem_server import resolve_binary

    parser = argparse.ArgumentParser(prog="python -m devstack.opensearch_front", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port, written to --ready-file")
    parser.add_argument("--ready-file", default="", help="where to write {url, upstream, pid} once listening")
    parser.add_argument("--max-body-bytes", type=int, default=SMALL_INSTANCE_LIMIT, help="10 MiB or 100 MiB")
    parser.add_argument("--osmem-bin", default=None)
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process disappears")
    args = parser.parse_args(argv)
    args.osmem_bin = resolve_binary(args.osmem_bin)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
