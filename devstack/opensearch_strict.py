"""The edges where Amazon OpenSearch Service is stricter than osmem, with the service's real answers.

Pure functions used by `devstack.opensearch_front`: each returns a `Rejection` (status and body as the
service sends them) or None when the request passes.
- `check_ids`: a `_bulk` (or single-document index) request with any `_id` over 512 UTF-8 bytes fails as a
  whole with 400 `action_request_validation_exception` (OpenSearch's BulkRequest validation);
- `too_large`: a body over the domain's HTTP payload limit gets 413 from the service's front end;
- `access_denied`: 403 `security_exception` while the caller's role is not yet mapped in the security plugin;
- `verify_sigv4`: a SigV4 signature is recomputed with botocore and compared; a wrong one, an unknown key or
  an X-Amz-Date more than 5 minutes from the server's clock gets the service's 403.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_ID_BYTES = 512
SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"
AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]+)"
)
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Rejection:
    status: int
    body: bytes
    kind: str  # what the front counts it as: too_long_id, too_large, access_denied, signature


def opensearch_error(status: int, error_type: str, reason: str) -> bytes:
    """OpenSearch's error envelope: the same cause as root cause and as the error itself."""
    cause = {"type": error_type, "reason": reason}
    return orjson.dumps({"error": {"root_cause": [cause], **cause}, "status": status})


def decoded_body(headers: Mapping[str, str], body: bytes) -> bytes:
    """The request body as OpenSearch reads it (gzip undone)."""
    if headers.get("Content-Encoding", "").lower() == "gzip" and body:
        return gzip.decompress(body)
    return body


def _bulk_ids(body: bytes) -> list[str]:
    """The `_id` of every action line of a bulk body (a document line follows all but `delete`)."""
    ids: list[str] = []
    lines = iter(line for line in body.split(b"\n") if line.strip())
    for line in lines:
        try:
            action = orjson.loads(line)
        except orjson.JSONDecodeError:
            return ids  # OpenSearch answers a malformed body itself
        if not isinstance(action, dict) or len(action) != 1:
            return ids
        op, meta = next(iter(action.items()))
        if isinstance(meta, dict) and meta.get("_id") is not None:
            ids.append(str(meta["_id"]))
        if op != "delete":
            next(lines, None)
    return ids


def check_ids(method: str, path: str, body: bytes) -> Rejection | None:
    """400 action_request_validation_exception when any document id is over 512 UTF-8 bytes."""
    route = urllib.parse.unquote(path.split("?", 1)[0])
    parts = [p for p in route.split("/") if p]
    if parts and parts[-1] == "_bulk" and method in ("POST", "PUT"):
        ids = _bulk_ids(body)
    elif len(parts) == 3 and parts[1] in ("_doc", "_create") and method in ("POST", "PUT"):
        ids = [parts[2]]
    else:
        return None
    problems = [
        f"id [{doc_id}] is too long, must be no longer than {MAX_ID_BYTES} bytes but was: {size}"
        for doc_id in ids
        if (size := len(doc_id.encode("utf-8"))) > MAX_ID_BYTES
    ]
    if not problems:
        return None
    reason = "Validation Failed: " + "".join(f"{n}: {p};" for n, p in enumerate(problems, 1))
    return Rejection(400, opensearch_error(400, "action_request_validation_exception", reason), "too_long_id")


def too_large(size: int, limit: int) -> Rejection | None:
    """413 from the domain's front end when the payload is over the instance type's limit."""
    if size <= limit:
        return None
    return Rejection(413, orjson.dumps({"Message": f"Request size exceeded {limit} bytes"}), "too_large")


def action_name(method: str, path: str) -> str:
    """The security plugin's action name for a request, as it appears in a `no permissions for` message."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not parts:
        return "cluster:monitor/main"
    if "_bulk" in parts:
        return "indices:data/write/bulk"
    if parts[0] == "_index_template":
        return "indices:admin/index_template/" + ("get" if method in ("GET", "HEAD") else "put")
    if "_search" in parts or "_count" in parts:
        return "indices:data/read/search"
    if "_mapping" in parts:
        return "indices:admin/mapping/" + ("get" if method in ("GET", "HEAD") else "put")
    if "_refresh" in parts:
        return "indices:admin/refresh"
    if len(parts) == 1:
        return {"PUT": "indices:admin/create", "DELETE": "indices:admin/delete"}.get(method, "indices:admin/get")
    return "indices:data/write/index" if method in ("PUT", "POST") else "indices:data/read/get"


def access_denied(method: str, path: str, role_arn: str) -> Rejection:
    """The security plugin's answer to an IAM role that has no role mapping yet."""
    reason = (
        f"no permissions for [{action_name(method, path)}] and User [name={role_arn}, backend_roles=[{role_arn}], "
        "requestedTenant=null]"
    )
    return Rejection(403, opensearch_error(403, "security_exception", reason), "access_denied")


def _signature_error(message: str) -> Rejection:
    return Rejection(403, orjson.dumps({"message": message}), "signature")


def verify_sigv4(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    now: datetime,
) -> Rejection | None:
    """Recompute the request's SigV4 signature with botocore and compare it with the one sent.

    `raw_path` is the path and query as sent; `body` the bytes as sent (compressed if they were).
    """
    match = AUTH_RE.match(headers.get("Authorization", ""))
    if match is None:
        return _signature_error("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.")
    stamp = headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(stamp, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        return _signature_error("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if signed_at < now - SKEW:
        return _signature_error(
            f"Signature expired: {stamp} is now earlier than {(now - SKEW).strftime(AMZ_DATE)} "
            f"({now.strftime(AMZ_DATE)} - 5 min.)"
        )
    if signed_at > now + SKEW:
        return _signature_error(
            f"Signature not yet current: {stamp} is still later than {(now + SKEW).strftime(AMZ_DATE)} "
            f"({now.strftime(AMZ_DATE)} + 5 min.)"
        )
    access_key, day, region, service, _ = [*match["cred"].split("/"), "", "", "", ""][:5]
    secret = secrets.get(access_key)
    if secret is None:
        return _signature_error("The security token included in the request is invalid.")
    claimed_hash = headers.get("X-Amz-Content-SHA256")
    if claimed_hash not in (None, "UNSIGNED-PAYLOAD") and claimed_hash != hashlib.sha256(body).hexdigest():
        return _signature_error(SIGNATURE_MISMATCH)
    signed = match["signed"].split(";")
    lower = {k.lower(): v for k, v in headers.items()}
    request = AWSRequest(
        method=method,
        url=f"http://{lower.get('host', '')}{raw_path}",
        data=body,
        headers={name: lower[name] for name in signed if name in lower and name != "host"},
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(access_key, secret, headers.get("X-Amz-Security-Token")), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if day != stamp[:8] or signer.signed_headers(signer.headers_to_sign(request)) != match["signed"]:
        return _signature_error(SIGNATURE_MISMATCH)
    if not hmac.compare_digest(expected, match["sig"]):
        return _signature_error(SIGNATURE_MISMATCH)
    return None
