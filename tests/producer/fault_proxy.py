"""A loopback HTTP proxy between the producer and moto that injects Kinesis PutRecords failures.

It speaks the real wire format (JSON 1.1, `X-Amz-Target: Kinesis_20131202.PutRecords`): a partial failure
forwards only the surviving entries to moto and answers the others in place, order preserved, with
`ErrorCode`/`ErrorMessage` and `FailedRecordCount`, exactly as Kinesis does. Every other call is forwarded
unchanged. It counts every entry it made fail, which is what the producer's `retried` must equal.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PUT_RECORDS = "Kinesis_20131202.PutRecords"
JSON_TYPE = "application/x-amz-json-1.1"
HOP_HEADERS = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding"})

# Per-call actions, consumed one per PutRecords call; then every call passes (save `always_fail_keys`).
PARTIAL = "partial"  # entries at even positions fail with ProvisionedThroughputExceededException
INTERNAL_500 = "internal_500"  # the whole call fails: HTTP 500 InternalFailure
THROTTLE_400 = "throttle_400"  # the whole call fails: HTTP 400 ProvisionedThroughputExceededException
PASS = "pass"


@dataclass
class FaultProxy:
    upstream: str
    script: list[str] = field(default_factory=list)
    always_fail_keys: set[str] = field(default_factory=set)
    put_calls: int = 0
    injected: int = 0  # entries answered as failed (partial failures + every entry of a failed call)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- request handling -------------------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_HEADERS}
        if req.headers.get("X-Amz-Target") != PUT_RECORDS:
            status, resp_headers, payload = self._forward(req.path, headers, body)
            self._reply(req, status, payload, resp_headers.get("Content-Type", JSON_TYPE))
            return
        with self._lock:
            self.put_calls += 1
            action = self.script.pop(0) if self.script else PASS
        request = json.loads(body)
        entries = request["Records"]
        if action in (INTERNAL_500, THROTTLE_400):
            with self._lock:
                self.injected += len(entries)
            error, status = (
                ("InternalFailure", 500) if action == INTERNAL_500 else ("ProvisionedThroughputExceededException", 400)
            )
            payload = json.dumps({"__type": error, "message": "injected by the test's fault proxy"}).encode()
            self._reply(req, status, payload, JSON_TYPE)
            return
        failing = {
            i
            for i, entry in enumerate(entries)
            if (action == PARTIAL and i % 2 == 0) or entry["PartitionKey"] in self.always_fail_keys
        }
        results = self._put_subset(req.path, headers, request, [e for i, e in enumerate(entries) if i not in failing])
        merged = []
        forwarded = iter(results)
        for i, entry in enumerate(entries):
            if i in failing:
                merged.append(_failed_entry(entry, request["StreamName"]))
            else:
                merged.append(next(forwarded))
        with self._lock:
            self.injected += len(failing)
        payload = json.dumps({"FailedRecordCount": len(failing), "Records": merged, "EncryptionType": "NONE"})
        self._reply(req, 200, payload.encode(), JSON_TYPE)

    def _put_subset(
        self, path: str, headers: dict[str, str], request: dict[str, Any], subset: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if not subset:
            return []
        status, _, payload = self._forward(path, headers, json.dumps({**request, "Records": subset}).encode())
        answer = json.loads(payload)
        assert status == 200 and answer["FailedRecordCount"] == 0, (status, answer)
        assert len(answer["Records"]) == len(subset)
        return answer["Records"]

    def _forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    @staticmethod
    def _reply(req: BaseHTTPRequestHandler, status: int, payload: bytes, content_type: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", content_type)
        req.send_header("Content-Length", str(len(payload)))
        req.send_header("x-amzn-RequestId", "fault-proxy")
        req.end_headers()
        req.wfile.write(payload)


def _failed_entry(entry: dict[str, Any], stream: str) -> dict[str, str]:
    return {
        "ErrorCode": "ProvisionedThroughputExceededException",
        "ErrorMessage": f"Rate exceeded for shard shardId-000000000000 in stream {stream} under account "
        f"123456789012. (key {entry['PartitionKey']}, {len(base64.b64decode(entry['Data']))} bytes)",
    }


def read_stream(client: Any, stream_name: str) -> list[dict[str, Any]]:
    """Every record on every shard, from TRIM_HORIZON to the end, as decoded JSON objects."""
    out: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=stream_name)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        empty = 0
        while iterator and empty < 2:  # Kinesis returns empty pages mid-shard: two in a row mean the tip
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend(json.loads(r["Data"]) for r in page["Records"])
            empty = 0 if page["Records"] else empty + 1
            iterator = page.get("NextShardIterator")
    return out


def parse_summary(line: str) -> dict[str, str]:
    """`sent=1 retried=0 ... rate=9.1 reviews/s elapsed=0.1s` -> {"sent": "1", ...}."""
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [r["review_id"] for r in records]
