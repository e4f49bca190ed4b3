"""Start, watch and stop the local service processes (moto's Kinesis, osmem's OpenSearch, ...).

Shared by the `devstack` command and the test fixtures so both start the services the same way: on a free
loopback port, waiting until the service answers, failing with one clear message (never a hang) when the
port is taken, the child crashes or a dependency is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A local service could not start or stopped unexpectedly; the message says which and why."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when `url` answers any HTTP status below 500."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (OSError, ValueError):
        return False


@dataclass
class ManagedProcess:
    """A child process with a name, a URL and a log file; stopped with its whole process group."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path | None = None
    _log_file: object | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None


def spawn(
    name: str,
    argv: Sequence[str],
    url: str,
    ready: Callable[[], bool],
    *,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> ManagedProcess:
    """Start `argv` in its own process group and wait until `ready()` is true.

    Raises ServiceError with the log tail when the child exits early or is not ready in time.
    """
    log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    managed = ManagedProcess(name, url, proc, log_path, log_file if log_path else None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not managed.alive():
            tail = managed.log_tail()
            managed.stop()
            raise ServiceError(f"{name} exited with code {proc.returncode} during start-up. {tail}".strip())
        if ready():
            return managed
        time.sleep(0.1)
    managed.stop()
    raise ServiceError(f"{name} did not answer on {url} within {timeout:.0f} s. {managed.log_tail()}".strip())


def _require_port(name: str, port: int) -> None:
    if port_in_use(port):
        raise ServiceError(f"{name}: port {port} on {LOOPBACK} is already in use; choose another port")


def _require_executable(name: str, executable: str, package: str) -> str:
    path = shutil.which(executable) or str(Path(sys.executable).parent / executable)
    if not Path(path).exists():
        raise ServiceError(f"{name}: '{executable}' not found; install it with: pip install '{package}'")
    return path


KINESIS_STRICT_ARGS = ("--empty-page-every", "3", "--idle-lag-ms", "200")


def start_kinesis(port: int | None = None, log_path: Path | None = None, strict: bool = True) -> ManagedProcess:
    """moto's server on loopback: the Kinesis API (and any other moto service) at the returned URL.

    Without `port` the server binds port 0 and reports the port it got through a file, so no other process can
    take it in between. `strict` (tests, demo) turns on the Kinesis edges of `devstack.kinesis_strict`: empty
    pages mid-shard and a small lag at the tip (ListShards pages as Kinesis does in any mode).
    """
    if port:
        _require_port("kinesis (moto)", port)
    _require_executable("kinesis (moto)", "moto_server", "moto[server]")
    port_dir = Path(tempfile.mkdtemp(prefix="kinesis-port-"))
    port_file = port_dir / "port"
    argv = [sys.executable, "-m", "devstack.kinesis_server", "-H", LOOPBACK, "-p", str(port or 0)]
    argv += ["--port-file", str(port_file), *(KINESIS_STRICT_ARGS if strict else ())]
    url = [f"http://{LOOPBACK}:{port}" if port else ""]

    def ready() -> bool:
        if not url[0]:
            with contextlib.suppress(OSError, ValueError):
                url[0] = f"http://{LOOPBACK}:{int(port_file.read_text())}"
        return bool(url[0]) and http_ok(f"{url[0]}/moto-api/")

    try:
        proc = spawn("kinesis (moto)", argv, url[0] or "pending", ready, log_path=log_path, env=_child_env())
    finally:
        shutil.rmtree(port_dir, ignore_errors=True)
    proc.url = url[0]
    return proc


def start_opensearch(
    port: int | None = None,
    log_path: Path | None = None,
    parent_pid: int | None = None,
    strict: bool | None = None,
    max_body_bytes: int | None = None,
) -> ManagedProcess:
    """OpenSearch on loopback: osmem-server behind the strict front (`devstack.opensearch_front`) by default.

    The front behaves like Amazon OpenSearch Service at the edges osmem forgives (id length, payload limit,
    role mapping, SigV4). `strict=False` (or DEVSTACK_OPENSEARCH_STRICT=0) starts plain osmem instead.
    Without a `port`, the front binds port 0 and reports the port it got, so no other process can take it
    between choosing and binding.
    """
    if strict is None:
        strict = os.environ.get("DEVSTACK_OPENSEARCH_STRICT", "1").strip().lower() not in ("0", "false", "no")
    try:
        from osmem_server import resolve_binary
    except ImportError as err:
        raise ServiceError("opensearch (osmem): install it with: pip install osmem-server") from err
    if not strict:
        port = port or free_port()
        _require_port("opensearch (osmem)", port)
        url = f"http://{LOOPBACK}:{port}"
        argv = [resolve_binary(), "--addr", f"{LOOPBACK}:{port}", "--no-ja", "--no-stdin-watch"]
        if parent_pid is not None:
            argv += ["--parent-pid", str(parent_pid)]  # exits with its owner, even if the owner is killed
        return spawn("opensearch (osmem)", argv, url, lambda: http_ok(url), log_path=log_path)
    if port:
        _require_port("opensearch (strict front)", port)
    argv = [sys.executable, "-m", "devstack.opensearch_front", "--host", LOOPBACK, "--port", str(port or 0)]
    argv += ["--osmem-bin", resolve_binary()]
    if max_body_bytes is not None:
        argv += ["--max-body-bytes", str(max_body_bytes)]
    if parent_pid is not None:
        argv += ["--parent-pid", str(parent_pid)]  # the front (and its osmem) exit with their owner
    return spawn_reporting_url("opensearch (strict front)", argv, health_path="/_front/stats", log_path=log_path)


class ProcessGroup:
    """Stops every started process on exit, in reverse order; usable as a context manager."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []
        self._lock = threading.Lock()

    def add(self, proc: ManagedProcess) -> ManagedProcess:
        with self._lock:
            self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        with self._lock:
            procs, self.processes = list(reversed(self.processes)), []
        for proc in procs:
            proc.stop()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def start_bedrock(
    port: int | None = None,
    log_path: Path | None = None,
    backend: str = "lexicon",
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> ManagedProcess:
    """Our Bedrock-runtime-compatible server (`python -m devstack.bedrock`) on loopback.

    `extra_args` are more `devstack.bedrock` flags (knobs, llm options). The llm backend loads its model
    before it listens, so it gets a longer start-up allowance. Without a `port`, the server binds port 0 and
    reports the port it got, so no other process can take it between choosing and binding.
    """
    if port:
        _require_port("bedrock", port)
    try:
        import aiohttp  # noqa: F401
        import vaderSentiment  # noqa: F401
    except ImportError as err:
        hint = "install it with: pip install -e '.[local]'"
        raise ServiceError(f"bedrock: missing dependency ({err.name}); {hint}") from err
    argv = [sys.executable, "-m", "devstack.bedrock", "--host", LOOPBACK, "--port", str(port or 0)]
    argv += ["--backend", backend, *extra_args]
    return spawn_reporting_url(
        f"bedrock ({backend})",
        argv,
        health_path="/ping",
        log_path=log_path,
        timeout=timeout or (180.0 if backend == "llm" else 30.0),
    )


def spawn_reporting_url(
    name: str,
    argv: Sequence[str],
    *,
    health_path: str,
    log_path: Path | None = None,
    timeout: float = 30.0,
) -> ManagedProcess:
    """Start a server that takes `--ready-file PATH` and writes `{"url": ...}` there once it listens.

    The returned process's `url` is the one the server reported (it may have bound port 0); ready once
    `url + health_path` answers.
    """
    ready_dir = Path(tempfile.mkdtemp(prefix="devstack-ready-"))
    ready_file = ready_dir / "ready.json"
    found: list[str] = []

    def ready() -> bool:
        if not found and ready_file.exists():
            found.append(str(json.loads(ready_file.read_text())["url"]))
        return bool(found) and http_ok(f"{found[0]}{health_path}")

    try:
        where = f"http://{LOOPBACK} (port reported in {ready_file.name})"
        argv = [*argv, "--ready-file", str(ready_file)]
        managed = spawn(name, argv, where, ready, log_path=log_path, env=_child_env(), timeout=timeout)
    finally:
        shutil.rmtree(ready_dir, ignore_errors=True)
    managed.url = found[0]
    return managed


def _child_env() -> dict[str, str]:
    """The current environment, with this checkout importable by `python -m` from any working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env
