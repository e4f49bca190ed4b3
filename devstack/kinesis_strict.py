"""Kinesis reading as strict as the real service, patched into moto (see devstack.kinesis_server).

- GetRecords on a closed shard read to its end answers a null `NextShardIterator`: the one end-of-shard signal.
- With `empty_page_every` = N, every Nth GetRecords call on a shard that still holds records past the iterator
  returns no records and the same position (Kinesis returns empty pages in the middle of a shard); never twice
  for one position, so two empty pages in a row from one reader still mean the tip.
- `MillisBehindLatest` is measured to the shard's newest record; at least 1 on an open shard with records left.
  A closed shard reports 0 even with records left (its tip no longer moves): "empty and 0" is not its end.
- With `idle_lag_ms` = M, every other call at the tip of an open shard reports a lag in 1..M, as Kinesis does
  at times on a caught-up stream.
- ListShards pages at `list_shards_page` (MaxResults default) and continues on NextToken alone, as in Kinesis.
- Admin actions (X-Amz-Target `Kinesis_20131202.DevstackTrimShard` / `DevstackExpireShard`, see `trim_shard`
  and `expire_shard`) stand in for retention: trimming a shard's oldest records, expiring a closed shard. They are
  answered by a WSGI layer in front of moto's app (`AdminActions`), not registered on moto's response class.

moto's private Kinesis classes are patched here: the import refuses a moto release outside MOTO_TESTED.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataflow.compat import require

# moto's private Kinesis classes are patched here and in devstack.kinesis_server: the releases this was tested with.
MOTO_TESTED = ("5.2.5", "5.2.6")
require("moto", *MOTO_TESTED, what="devstack's strict local Kinesis")

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.kinesis import models, responses  # noqa: E402
from moto.kinesis.exceptions import InvalidArgumentError, ResourceNotFoundError  # noqa: E402
from moto.kinesis.utils import compose_shard_iterator, decompose_shard_iterator  # noqa: E402

TARGET_PREFIX = "Kinesis_20131202."


@dataclass
class Knobs:
    empty_page_every: int = 0
    idle_lag_ms: int = 0
    list_shards_page: int = 1000


KNOBS = Knobs()
_calls: dict[tuple[str, str], int] = {}
_empty_served: set[tuple[str, str, int]] = set()
_lock = threading.Lock()


def _count_call(stream: str, shard_id: str) -> int:
    with _lock:
        n = _calls.get((stream, shard_id), 0) + 1
        _calls[(stream, shard_id)] = n
        return n


def _first_empty(stream: str, shard_id: str, position: int) -> bool:
    """At most one empty page per position: two empty pages in a row mean the tip, for any one reader."""
    with _lock:
        key = (stream, shard_id, position)
        if key in _empty_served:
            return False
        _empty_served.add(key)
        return True


def millis_between(later: datetime | float, earlier: datetime | float) -> int:
    """Milliseconds from `earlier` to `later`: moto's `Record.created_at` is a float of seconds up to 5.2.5 and a
    datetime from 5.2.6 on."""
    delta = later - earlier  # type: ignore[operator]
    seconds = delta.total_seconds() if hasattr(delta, "total_seconds") else float(delta)
    return int(seconds * 1000)


def _get_records(
    self: models.KinesisBackend, stream_arn: str | None, shard_iterator: str, limit: int | None
) -> tuple[str | None, list[models.Record], int]:
    stream_name, shard_id, last_raw = decompose_shard_iterator(shard_iterator)
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.get_shard(shard_id)
    last = int(last_raw)
    call = _count_call(stream.stream_name, shard_id)
    pending = next((seq for seq in shard.records if seq > last), None)
    if (
        KNOBS.empty_page_every
        and pending is not None
        and call % KNOBS.empty_page_every == 0
        and _first_empty(stream.stream_name, shard_id, last)
    ):
        records: list[models.Record] = []
    else:
        records, last, _ = shard.get_records(str(last), limit)
    following = next((seq for seq in shard.records if seq > last), None)
    if following is not None:
        tip = shard.records[next(reversed(shard.records))]
        lag = millis_between(tip.created_at, shard.records[following].created_at)
        lag = max(1, lag) if shard.is_open else 0
    elif shard.is_open and KNOBS.idle_lag_ms and call % 2 == 1:
        lag = random.randint(1, KNOBS.idle_lag_ms)
    else:
        lag = 0
    if not shard.is_open and following is None:
        return None, records, lag  # type: ignore[return-value]
    return compose_shard_iterator(stream_name, shard, last), records, lag


def _get_records_response(self: responses.KinesisResponse) -> ActionResult:
    next_iterator, records, lag = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    body: dict[str, Any] = {"Records": [r.to_json() for r in records], "MillisBehindLatest": lag}
    if next_iterator is not None:
        body["NextShardIterator"] = next_iterator
    return ActionResult(body)


def _token(stream: str, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"stream": stream, "after": after}).encode()).decode()


def _list_shards_response(self: responses.KinesisResponse) -> ActionResult:
    stream_arn, stream_name = self._get_param("StreamARN"), self._get_param("StreamName")
    next_token = self._get_param("NextToken")
    page = int(self._get_param("MaxResults") or KNOBS.list_shards_page)
    if not 1 <= page <= 10000:
        raise InvalidArgumentError(f"MaxResults {page} is not between 1 and 10000")
    after = ""
    if next_token:
        if stream_name or stream_arn:
            raise InvalidArgumentError("NextToken and StreamName cannot be provided together.")
        try:
            state = json.loads(base64.urlsafe_b64decode(next_token.encode()))
            stream_name, after = state["stream"], state["after"]
        except (ValueError, KeyError, TypeError) as err:
            raise InvalidArgumentError(f"Invalid NextToken: {next_token[:40]}") from err
    stream = self.kinesis_backend.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shards = [s for s in sorted(stream.shards.values(), key=lambda s: s.shard_id) if s.shard_id > after]
    body: dict[str, Any] = {"Shards": [s.to_json() for s in shards[:page]]}
    if len(shards) > page:
        body["NextToken"] = _token(stream.stream_name, shards[page - 1].shard_id)
    return ActionResult(body)


def _stream_and_shard(backend: models.KinesisBackend, body: dict[str, Any]) -> tuple[models.Stream, models.Shard]:
    stream = backend.describe_stream(stream_arn=None, stream_name=body.get("StreamName"))
    shard_id = body.get("ShardId")
    if shard_id not in stream.shards:
        raise ResourceNotFoundError(f"Shard {shard_id} in stream {stream.stream_name} does not exist")
    return stream, stream.shards[shard_id]


def _devstack_trim_shard(backend: models.KinesisBackend, body: dict[str, Any]) -> None:
    """Retention: drop the shard's records up to and including sequence number `UpTo`."""
    _, shard = _stream_and_shard(backend, body)
    up_to = int(body["UpTo"])
    for seq in [s for s in shard.records if s <= up_to]:
        del shard.records[seq]


def _devstack_expire_shard(backend: models.KinesisBackend, body: dict[str, Any]) -> None:
    """Retention: a closed shard whose records all expired leaves the listing."""
    stream, shard = _stream_and_shard(backend, body)
    if shard.is_open:
        raise InvalidArgumentError(f"Shard {shard.shard_id} is open; only a closed shard expires")
    del stream.shards[shard.shard_id]


ADMIN_ACTIONS = {"DevstackTrimShard": _devstack_trim_shard, "DevstackExpireShard": _devstack_expire_shard}


class AdminActions:
    """WSGI in front of moto's app: the admin targets, which moto (routing by Kinesis's own service model since
    5.2.6) would answer 404. Everything else goes to moto unchanged."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        action = environ.get("HTTP_X_AMZ_TARGET", "").removeprefix(TARGET_PREFIX)
        if action not in ADMIN_ACTIONS:
            return self.app(environ, start_response)
        body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
        scope = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        backend = models.kinesis_backends[DEFAULT_ACCOUNT_ID][scope[1] if scope else "us-east-1"]
        try:
            ADMIN_ACTIONS[action](backend, body)
            status, answer = "200 OK", {}
        except (InvalidArgumentError, ResourceNotFoundError, KeyError, ValueError) as err:
            status, answer = "400 Bad Request", {"__type": type(err).__name__, "message": str(err)}
        payload = json.dumps(answer).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))])
        return [payload]


def patch_moto() -> None:
    models.KinesisBackend.get_records = _get_records  # type: ignore[method-assign,assignment]
    responses.KinesisResponse.get_records = _get_records_response  # type: ignore[method-assign]
    responses.KinesisResponse.list_shards = _list_shards_response  # type: ignore[method-assign]


def _admin(url: str, action: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "X-Amz-Target": TARGET_PREFIX + action,
            "Content-Type": "application/x-amz-json-1.1",
            # moto routes by the signing scope; any credentials do on the local server
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def trim_shard(url: str, stream: str, shard_id: str, up_to: str) -> None:
    """Test helper: the local Kinesis drops `shard_id`'s records up to sequence number `up_to`."""
    _admin(url, "DevstackTrimShard", {"StreamName": stream, "ShardId": shard_id, "UpTo": up_to})


def expire_shard(url: str, stream: str, shard_id: str) -> None:
    """Test helper: the closed shard `shard_id` leaves the listing, as after the retention period."""
    _admin(url, "DevstackExpireShard", {"StreamName": stream, "ShardId": shard_id})
