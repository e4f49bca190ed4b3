"""Apply the stack's OpenSearch security plan (fine-grained access control) as the domain's master role.

Run by the `reviewstream-access-mapping` Kubernetes Job with the security-admin IRSA role, before the
dataflow starts (the StatefulSet depends on the Job, and Pulumi waits for the Job to complete). The plan is
a JSON list of `{"method", "path", "body"}` security API calls (roles, then role mappings); each is
idempotent (a PUT of the whole object), so a re-run converges. Every call is SigV4-signed (service `es`).

A young domain answers 401/403 (its master user is still being set up, or the IRSA role is not yet
admitted by IAM), 5xx, or not at all: those are retried with backoff until ACCESS_DEADLINE_S. Any other
answer is a plan error and fails at once. After applying, each mapping is read back and checked.
Uses only the standard library and botocore (in the dataflow image). One log line per event.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import sys
import time
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import Session

RETRYABLE = {401, 403, 408, 429, 500, 502, 503, 504}


class PlanError(RuntimeError):
    """The domain refused a call for a reason waiting will not fix."""


def log(event: str, **fields: object) -> None:
    print(event, *(f"{k}={v}" for k, v in fields.items()), flush=True)


def call(url: str, region: str, method: str, path: str, body: object | None, timeout: float) -> tuple[int, bytes]:
    parts = urlsplit(url)
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Host": parts.netloc, "Content-Type": "application/json"}
    request = AWSRequest(method=method, url=f"{url}{path}", data=data, headers=headers)
    credentials = Session().get_credentials()
    if credentials is None:
        raise PlanError("no AWS credentials (is the service account's IRSA role annotation in place?)")
    SigV4Auth(credentials.get_frozen_credentials(), "es", region).add_auth(request)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request(method, path, body=data or None, headers=dict(request.headers.items()))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def call_until_done(url: str, region: str, step: dict, deadline: float, retry_max_s: float) -> bytes:
    attempt = 0
    while True:
        attempt += 1
        try:
            status, payload = call(url, region, step["method"], step["path"], step.get("body"), timeout=30)
            if 200 <= status < 300:
                log("access.applied", method=step["method"], path=step["path"], status=status, attempt=attempt)
                return payload
            if status not in RETRYABLE:
                raise PlanError(f"{step['method']} {step['path']} answered {status}: {payload[:300]!r}")
            reason = f"status={status}"
        except OSError as err:  # connection refused, DNS not yet resolvable, TLS or socket timeout
            reason = f"error={type(err).__name__}"
        if time.monotonic() >= deadline:
            raise PlanError(f"{step['method']} {step['path']} still failing at the deadline ({reason})")
        wait = min(retry_max_s, 0.5 * 2 ** min(attempt, 10))
        log("access.retry", path=step["path"], attempt=attempt, wait_s=round(wait, 2), cause=reason)
        time.sleep(wait)


def verify(url: str, region: str, step: dict, deadline: float, retry_max_s: float) -> None:
    """Read a role mapping back: every backend role the plan maps must be there."""
    wanted = set(step["body"].get("backend_roles", []))
    payload = call_until_done(url, region, {"method": "GET", "path": step["path"]}, deadline, retry_max_s)
    name = step["path"].rstrip("/").rsplit("/", 1)[-1]
    found = set(json.loads(payload).get(name, {}).get("backend_roles", []))
    if not wanted <= found:
        raise PlanError(f"mapping {name} has backend roles {sorted(found)}, expected {sorted(wanted)}")
    log("access.verified", mapping=name, backend_roles=",".join(sorted(wanted)))


def main() -> int:
    url = os.environ["OPENSEARCH_URL"].rstrip("/")
    region = os.environ.get("AWS_REGION", "us-east-1")
    with open(os.environ.get("ACCESS_PLAN", "/opt/access/plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    deadline = time.monotonic() + float(os.environ.get("ACCESS_DEADLINE_S", "1200"))
    retry_max_s = float(os.environ.get("ACCESS_RETRY_MAX_S", "30"))
    try:
        for step in plan:
            call_until_done(url, region, step, deadline, retry_max_s)
        for step in plan:
            if "/rolesmapping/" in step["path"]:
                verify(url, region, step, deadline, retry_max_s)
    except PlanError as err:
        log("access.failed", reason=json.dumps(str(err)))
        return 1
    log("access.done", steps=len(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
