"""The one loopback HTTP proxy that injects faults in front of a local service (OpenSearch, Kinesis, ...).

It forwards requests unchanged and, on demand, answers some of them itself: a 429 with OpenSearch's error
body, a 503, a closed connection (an outage), or any canned `Reply` (status, body, content type), such as a
Kinesis awsJson1.1 error. Faults are chosen per request by one of three hooks, simplest first:
- `decide(method, path)`;
- `inspect(method, path, headers, body)`, when a decision needs the headers or the body (Kinesis puts the
  operation in `X-Amz-Target`);
- `handle(request, forward)`, when the answer is built from the upstream's (a Kinesis partial failure
  forwards the surviving entries with `forward(body)` and answers the others itself).
`requests` records `(method, path, label)` where the label is the decision (a `Reply`'s `label`).
`on_done(method, path, decision)`, when given, is called once each request has been answered (forwarded
or not), so a test can wait for forwarded requests to land instead of sleeping.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

AWS_JSON_11 = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Reply:
    """A canned answer given instead of forwarding; `label` is what `FaultProxy.count` matches."""

    status: int
    body: bytes
    label: str
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ProxyRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Upstream:
    """The upstream service's answer to a forwarded request."""

    status: int
    headers: dict[str, str]
    body: bytes


Decision = str | Reply | None  # None: forward; "429"; "503"; "drop": close the connection; or a Reply
Inspect = Callable[[str, str, Mapping[str, str], bytes], Decision]
Forward = Callable[[bytes], Upstream]  # send the request upstream with this body
Handle = Callable[[ProxyRequest, Forward], Decision]
OnDone = Callable[[str, str, Decision], None]
HOP_HEADERS = frozenset({"host", "connection", "content-length", "keep-alive", "transfer-encoding"})


def aws_json_error(code: str, message: str, label: str, status: int = 400) -> Reply:
    """An awsJson1.1 error as Kinesis (and moto) send it: botocore reads the code from `__type`."""
    body = orjson.dumps({"__type": code, "message": message})
    return Reply(status, body, label, AWS_JSON_11, (("x-amzn-RequestId", "fault-proxy"),))


def _label(decision: Decision) -> str | None:
    return decision.label if isinstance(decision, Reply) else decision


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        decide: Callable[[str, str], Decision] = lambda m, p: None,
        *,
        inspect: Inspect | None = None,
        handle: Handle | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.decide = decide
        self.inspect = inspect
        self.handle = handle
        self.on_done = on_done
        self.requests: list[tuple[str, str, str | None]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                return

            def _reply(
                self, status: int, payload: bytes, content_type: str, headers: tuple[tuple[str, str], ...] = ()
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _handle(self) -> None:
                self._decision: Decision = "unanswered"  # until a decision is made
                try:
                    self._handle_request()
                finally:
                    if proxy.on_done is not None:
                        proxy.on_done(self.command, self.path, self._decision)

            def _handle_request(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                if proxy.handle is not None:
                    request = ProxyRequest(self.command, self.path, self.headers, body)
                    decision = proxy.handle(request, lambda b: proxy.forward(self.command, self.path, headers, b))
                elif proxy.inspect is not None:
                    decision = proxy.inspect(self.command, self.path, self.headers, body)
                else:
                    decision = proxy.decide(self.command, self.path)
                self._decision = decision
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, _label(decision)))
                    proxy.headers.append(dict(self.headers))
                if decision == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(decision, Reply):
                    self._reply(decision.status, decision.body, decision.content_type, decision.headers)
                    return
                if decision in ("429", "503"):
                    status = int(decision)
                    payload = orjson.dumps(
                        {"error": {"type": "es_rejected_execution_exception", "reason": "injected"}, "status": status}
                    )
                    self._reply(status, payload, "application/json")
                    return
                answer = proxy.forward(self.command, self.path, headers, body)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Upstream:
        """Send one request to the upstream service and return its answer."""
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body))})
            resp = conn.getresponse()
            return Upstream(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()

    def count(self, decision: str | None, path_part: str = "") -> int:
        """Requests that got `decision` (a `Reply`'s label for canned answers) on a path containing `path_part`."""
        with self._lock:
            return sum(1 for _, path, d in self.requests if d == decision and path_part in path)
