"""`up`, `down` and `status`: the local stack as detached processes recorded in `.devstack/state.json`.

`up` leaves the services running after it exits (each in its own session) and writes `.devstack/env`
(source it to point the producer and the dataflow at them); `down` stops what state.json records,
checking each pid's start time first so a recycled pid is never killed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import orjson

from devstack.bedrock import DEFAULT_MODEL_ID
from devstack.bedrock.batch.knobs import add_batch_arguments, batch_argv, batch_knobs_from_args
from devstack.bedrock.options import add_knob_arguments, knob_argv, knobs_from_args
from devstack.cli import command
from devstack.processes import ServiceError, http_ok, spawn_reporting_url
from devstack.stack import LocalStack, StackConfig

STATE_DIR = ".devstack"
HEALTH_PATHS = {"kinesis": "/moto-api/", "opensearch": "/", "bedrock": "/ping", "live": "/state.json"}


def _dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).resolve()


def _state_path(args: argparse.Namespace) -> Path:
    return _dir(args) / "state.json"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=STATE_DIR, help="where env, state.json and logs go (default: .devstack)")


def _up_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--stream", default="reviews", help="Kinesis stream name")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--backend", choices=("lexicon", "llm"), default="lexicon")
    p.add_argument("--model-id", default=DEFAULT_MODEL_ID, help="written to BEDROCK_MODEL_ID")
    p.add_argument("--kinesis-port", type=int, default=None)
    p.add_argument("--opensearch-port", type=int, default=None)
    p.add_argument("--bedrock-port", type=int, default=None)
    llm = p.add_argument_group("llm backend")
    llm.add_argument("--model-path", default=None)
    llm.add_argument("--llm-mode", choices=("per-review", "joint"), default=None)
    llm.add_argument("--llm-threads", type=int, default=None)
    llm.add_argument("--llm-parallel", type=int, default=None)
    add_knob_arguments(p)
    add_batch_arguments(p)


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def _alive(entry: dict) -> bool:
    started = proc_start_time(int(entry["pid"]))
    return started is not None and started == entry.get("start_time")


def _read_state(args: argparse.Namespace) -> dict | None:
    path = _state_path(args)
    if not path.exists():
        return None
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ServiceError(f"{path} is not valid JSON ({err}); remove it by hand") from err


@command("up", "start Kinesis (moto), OpenSearch (osmem) and the Bedrock server, detached", _up_arguments)
def up(args: argparse.Namespace) -> int:
    base = _dir(args)
    state = _read_state(args)
    if state and any(_alive(s) for s in state["services"].values()):
        raise ServiceError(f"the stack in {base} is already up; run `python -m devstack down` first")
    try:
        knobs_from_args(args)  # a bad knob fails here, before anything starts
        batch_knobs_from_args(args)
    except ValueError as err:
        raise ServiceError(f"bad knob: {err}") from err
    bedrock_args = knob_argv(args) + batch_argv(args)
    for flag in ("model_path", "llm_mode", "llm_threads", "llm_parallel"):
        value = getattr(args, flag)
        if value is not None:
            bedrock_args += ["--" + flag.replace("_", "-"), str(value)]
    config = StackConfig(
        stream=args.stream,
        shards=args.shards,
        backend=args.backend,
        bedrock_args=bedrock_args,
        model_id=args.model_id,
        kinesis_port=args.kinesis_port,
        opensearch_port=args.opensearch_port,
        bedrock_port=args.bedrock_port,
        log_dir=base / "logs",
    )
    stack = LocalStack(config).start()  # stops what it started and raises on any failure
    env = stack.env()
    try:  # the live page watches the indices and a flow on the default metrics port (METRICS_PORT 9108)
        live = spawn_reporting_url(
            "live page",
            [sys.executable, "-m", "devstack.live.server", "--opensearch-url", env["OPENSEARCH_URL"]],
            health_path="/state.json",
            log_path=(base / "logs" / "live.log"),
        )
    except BaseException:
        stack.stop()
        raise
    services = {}
    procs = (("kinesis", stack.kinesis), ("opensearch", stack.opensearch), ("bedrock", stack.bedrock), ("live", live))
    for name, proc in procs:
        assert proc is not None
        services[name] = {
            "pid": proc.pid,
            "start_time": proc_start_time(proc.pid),
            "url": proc.url,
            "port": int(proc.url.rsplit(":", 1)[1]),
            "log": str(proc.log_path),
        }
    state = {
        "services": services,
        "env": env,
        "stream": args.stream,
        "shards": args.shards,
        "backend": args.backend,
        "created_at": time.time(),
    }
    base.mkdir(parents=True, exist_ok=True)
    (base / "state.json").write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    (base / "env").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    for name, svc in services.items():
        print(f"{name:<11} pid {svc['pid']:<7} {svc['url']}")
    print(f"stream {args.stream!r} ({args.shards} shards) is ACTIVE; backend {args.backend}")
    print(f"live page   {services['live']['url']}/   (reads OpenSearch and the flow's metrics on :9108)")
    print(f"source {base / 'env'}   # then run the producer and the dataflow")
    return 0


def _stop(entry: dict, grace: float = 5.0) -> None:
    """SIGTERM the service's process group, SIGKILL it after `grace` seconds."""
    pid = int(entry["pid"])
    if not _alive(entry):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(entry):
        time.sleep(0.1)
    if _alive(entry):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(entry):
            time.sleep(0.1)


@command("down", "stop the services recorded in .devstack/state.json", _common)
def down(args: argparse.Namespace) -> int:
    state = _read_state(args)
    if state is None:
        print(f"nothing to stop: no {_state_path(args)}")
        return 0
    for name, entry in reversed(list(state["services"].items())):
        was_alive = _alive(entry)
        _stop(entry)
        print(f"{name:<11} {'stopped' if was_alive else 'was not running'} (pid {entry['pid']})")
    _state_path(args).unlink(missing_ok=True)
    (_dir(args) / "env").unlink(missing_ok=True)
    return 0


@command("status", "show each service, its pid and url, and whether it answers", _common)
def status(args: argparse.Namespace) -> int:
    state = _read_state(args)
    if state is None:
        print(f"not up: no {_state_path(args)}")
        return 3
    healthy = True
    for name, entry in state["services"].items():
        alive = _alive(entry)
        answers = alive and http_ok(entry["url"] + HEALTH_PATHS.get(name, "/"))
        healthy &= answers
        word = "up" if answers else ("not answering" if alive else "dead")
        print(f"{name:<11} pid {entry['pid']:<7} {entry['url']:<26} {word}")
    return 0 if healthy else 1
