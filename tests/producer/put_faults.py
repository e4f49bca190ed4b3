"""Kinesis PutRecords failures, injected by the shared fault proxy (tests/fault_proxy.py) between the
producer and moto.

It speaks the real wire format (JSON 1.1, `X-Amz-Target: Kinesis_20131202.PutRecords`): a partial failure
forwards only the surviving entries to moto and answers the others in place, order preserved, with
`ErrorCode`/`ErrorMessage` and `FailedRecordCount`, exactly as Kinesis does. Every other call is forwarded
unchanged. It counts every entry it made fail, which is what the producer's `retried` must equal.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fault_proxy import AWS_JSON_11, Decision, Forward, ProxyRequest, Reply, aws_json_error

PUT_RECORDS = "Kinesis_20131202.PutRecords"

# Per-call actions, consumed one per PutRecords call; then every call passes (save `always_fail_keys`).
PARTIAL = "partial"  # entries at even positions fail with ProvisionedThroughputExceededException
INTERNAL_500 = "internal_500"  # the whole call fails: HTTP 500 InternalFailure
THROTTLE_400 = "throttle_400"  # the whole call fails: HTTP 400 ProvisionedThroughputExceededException
PASS = "pass"


@dataclass
class PutRecordsFaults:
    """The `handle` hook of a `FaultProxy`; `url` is the proxy's, set by the fixture that starts it."""

    script: list[str] = field(default_factory=list)
    always_fail_keys: set[str] = field(default_factory=set)
    put_calls: int = 0
    injected: int = 0  # entries answered as failed (partial failures + every entry of a failed call)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def handle(self, request: ProxyRequest, forward: Forward) -> Decision:
        if request.headers.get("X-Amz-Target") != PUT_RECORDS:
            return None
        with self._lock:
            self.put_calls += 1
            action = self.script.pop(0) if self.script else PASS
        call = orjson.loads(request.body)
        entries = call["Records"]
        if action in (INTERNAL_500, THROTTLE_400):
            with self._lock:
                self.injected += len(entries)
            if action == INTERNAL_500:
                return aws_json_error("InternalFailure", "injected by the test's fault proxy", action, 500)
            return aws_json_error(
                "ProvisionedThroughputExceededException", "injected by the test's fault proxy", action
            )
        failing = {
            i
            for i, entry in enumerate(entries)
            if (action == PARTIAL and i % 2 == 0) or entry["PartitionKey"] in self.always_fail_keys
        }
        survivors = [e for i, e in enumerate(entries) if i not in failing]
        forwarded = iter(self._put_subset(forward, call, survivors))
        merged = [
            _failed_entry(entry, call["StreamName"]) if i in failing else next(forwarded)
            for i, entry in enumerate(entries)
        ]
        with self._lock:
            self.injected += len(failing)
        body = orjson.dumps({"FailedRecordCount": len(failing), "Records": merged, "EncryptionType": "NONE"})
        return Reply(200, body, action, AWS_JSON_11, (("x-amzn-RequestId", "fault-proxy"),))

    @staticmethod
    def _put_subset(forward: Forward, call: dict[str, Any], subset: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not subset:
            return []
        upstream = forward(orjson.dumps({**call, "Records": subset}))
        answer = orjson.loads(upstream.body)
        assert upstream.status == 200 and answer["FailedRecordCount"] == 0, (upstream.status, answer)
        assert len(answer["Records"]) == len(subset)
        return answer["Records"]


def _failed_entry(entry: dict[str, Any], stream: str) -> dict[str, str]:
    return {
        "ErrorCode": "ProvisionedThroughputExceededException",
        "ErrorMessage": f"Rate exceeded for shard shardId-000000000000 in stream {stream} under account "
        f"123456789012. (key {entry['PartitionKey']}, {len(base64.b64decode(entry['Data']))} bytes)",
    }


def parse_summary(line: str) -> dict[str, str]:
    """`sent=1 retried=0 ... rate=9.1 reviews/s elapsed=0.1s` -> {"sent": "1", ...}."""
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [r["review_id"] for r in records]
