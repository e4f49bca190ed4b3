"""The strict front's checks, with the wire shapes Amazon OpenSearch Service sends (no server needed)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson
from botocore.credentials import Credentials
from opensearchpy.helpers.signer import AWSV4Signer

from devstack.opensearch_strict import access_denied, check_ids, decoded_body, too_large, verify_sigv4

HOST = "127.0.0.1:9200"


def bulk(*ids: str) -> bytes:
    lines = []
    for doc_id in ids:
        lines += [orjson.dumps({"index": {"_index": "i", "_id": doc_id}}), b'{"x": 1}']
    lines.append(orjson.dumps({"delete": {"_index": "i", "_id": "d"}}))  # no document line follows a delete
    return b"\n".join(lines) + b"\n"


def test_an_id_over_512_bytes_fails_the_whole_bulk_with_opensearchs_body() -> None:
    ok = "€" * 170 + "ab"  # 512 bytes
    assert check_ids("POST", "/_bulk", bulk("a", ok)) is None
    rejection = check_ids("POST", "/_bulk?refresh=false", bulk("a", "é" * 300, ok + "c"))
    assert rejection is not None and rejection.status == 400
    error = orjson.loads(rejection.body)
    assert error["status"] == 400 and error["error"]["type"] == "action_request_validation_exception"
    assert error["error"]["root_cause"][0]["type"] == "action_request_validation_exception"
    reason = error["error"]["reason"]
    assert reason.startswith("Validation Failed: 1: id [éé") and "but was: 600;2: id [" in reason
    assert reason.endswith("must be no longer than 512 bytes but was: 513;")
    assert check_ids("PUT", "/i/_doc/" + "%C3%A9" * 300, b"{}") is not None  # single-document API too


def test_payload_limit_and_access_window_answers() -> None:
    assert too_large(10 * 1024 * 1024, 10 * 1024 * 1024) is None
    rejection = too_large(10 * 1024 * 1024 + 1, 10 * 1024 * 1024)
    assert rejection is not None and rejection.status == 413
    assert orjson.loads(rejection.body) == {"Message": "Request size exceeded 10485760 bytes"}
    denied = access_denied("POST", "/_bulk", "arn:aws:iam::1:role/r")
    error = orjson.loads(denied.body)
    assert denied.status == 403 and error["error"]["type"] == "security_exception"
    assert error["error"]["reason"].startswith(
        "no permissions for [indices:data/write/bulk] and User [name=arn:aws:iam::1:role/r, backend_roles=["
    )


def signed(secret: str, body: bytes, path: str = "/_bulk?refresh=true") -> dict[str, str]:
    headers = AWSV4Signer(Credentials("AKID", secret), "us-east-1", "es").sign("POST", f"http://{HOST}{path}", body)
    return {**headers, "Host": HOST, "Content-Encoding": "gzip"}


def test_sigv4_is_recomputed_over_the_gzip_body_as_sent() -> None:
    body = gzip.compress(bulk("a", "b"))
    secrets = {"AKID": "secret"}
    now = datetime.now(UTC)
    headers = signed("secret", body)
    assert verify_sigv4("POST", "/_bulk?refresh=true", headers, body, secrets, now) is None
    assert decoded_body(headers, body) == bulk("a", "b")
    wrong = verify_sigv4("POST", "/_bulk?refresh=true", signed("other", body), body, secrets, now)
    assert wrong is not None and b"signature we calculated does not match" in wrong.body
    tampered = verify_sigv4("POST", "/_bulk?refresh=true", headers, gzip.compress(bulk("a", "c")), secrets, now)
    assert tampered is not None and tampered.status == 403
    other_path = verify_sigv4("POST", "/_bulk?refresh=false", headers, body, secrets, now)
    assert other_path is not None and other_path.status == 403
    unknown = verify_sigv4("POST", "/_bulk?refresh=true", headers, body, {"OTHER": "secret"}, now)
    assert unknown is not None and b"security token included in the request is invalid" in unknown.body


def test_a_signature_more_than_5_minutes_off_the_server_clock_is_refused() -> None:
    body = b"{}"
    headers = signed("secret", body, "/")
    now = datetime.now(UTC)
    assert verify_sigv4("POST", "/", headers, body, {"AKID": "secret"}, now + timedelta(minutes=4)) is None
    late = verify_sigv4("POST", "/", headers, body, {"AKID": "secret"}, now + timedelta(minutes=6))
    assert late is not None and orjson.loads(late.body)["message"].startswith("Signature expired: ")
    early = verify_sigv4("POST", "/", headers, body, {"AKID": "secret"}, now - timedelta(minutes=6))
    assert early is not None and orjson.loads(early.body)["message"].startswith("Signature not yet current: ")
