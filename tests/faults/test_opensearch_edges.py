"""The real flow against the strict local OpenSearch: the edges where Amazon OpenSearch Service refuses what
osmem alone would accept, and the accounting after each (in = indexed + dead-lettered, 0 lost, 0 twice).

- review ids over 512 UTF-8 bytes (the reported repro: four 300-character non-ASCII ids made the whole bulk
  fail, and nothing was stored in either index);
- a role mapped without bulk-write permission: past OPENSEARCH_AUTH_GRACE_S the flow halts with one line,
  and no checkpoint covers the refused records (a restart with the permission in place stores them all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import urllib3

from tests.faults.accounting import (
    check_accounting,
    documents,
    flow_process,
    put_raw,
    synthetic_ids,
    wait_exit,
    wait_until,
)
from tests.plugins.stack import Pipeline, recovery_args

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

LONG_IDS = [ch * 300 for ch in "éüñ€"]  # 300 characters each: 600 or 900 bytes in UTF-8


def front(pipeline: Pipeline, path: str, knobs: object | None = None) -> dict:
    resp = urllib3.PoolManager().request(
        "POST" if knobs is not None else "GET",
        f"{pipeline.env['OPENSEARCH_URL']}/_front/{path}",
        body=orjson.dumps(knobs) if knobs is not None else None,
    )
    assert resp.status == 200, resp.data
    return orjson.loads(resp.data)


@pytest.fixture()
def strict(faulty: Pipeline) -> Iterator[Pipeline]:
    """The pipeline with the front's knobs reset before and after."""
    front(faulty, "reset", {})
    yield faulty
    front(faulty, "reset", {})


def test_review_ids_over_512_bytes_are_dead_lettered_at_parse_and_the_rest_indexed(
    strict: Pipeline, record_property: Callable[[str, object], None]
) -> None:
    total = 40
    strict.produce(total)
    long_records = [
        orjson.dumps({"review_id": rid, "user_id": "u1", "date_time": 1_700_000_000_000, "text": "Fine kettle."})
        for rid in LONG_IDS
    ]
    placed = put_raw(strict, long_records, prefix="long")
    long_keys = {f"{shard}-{seq}" for shard, seq in placed}
    strict.run_flow("-w", "2")
    result = check_accounting(strict, synthetic_ids(total) | long_keys, "opensearch long ids", record_property)
    assert set(result.dead) == long_keys  # keyed by shard-sequence: the id itself cannot be an _id
    assert {d["error_type"] for d in result.dead.values()} == {"id_too_long"}
    assert all("UTF-8" in d["error"] and d["stage"] == "parse" for d in result.dead.values())
    assert front(strict, "stats")["stats"].get("rejected_too_long_id", 0) == 0  # nothing too long was even sent


def test_missing_write_permission_halts_before_a_checkpoint_covers_the_records(
    strict: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    total = 60
    strict.produce(total)
    args = recovery_args(tmp_path / "recovery", workers=1)
    front(strict, "config", {"deny_access": True, "deny_only": ["indices:data/write/bulk"]})
    log = tmp_path / "halted.log"
    with flow_process(strict, *args, log=log, extra_env={"OPENSEARCH_AUTH_GRACE_S": "2"}) as proc:
        wait_until(lambda: proc.poll() is not None, 60, "the flow to halt", log, strict.progress)
        code = proc.wait()
    text = log.read_text()
    assert code != 0, f"the flow should halt; log tail:\n{text[-3000:]}"
    halts = [line for line in text.splitlines() if "opensearch.halt" in line]
    assert halts and all("OPENSEARCH_AUTH_GRACE_S" in line and "indices:data/write/bulk" in line for line in halts)
    assert front(strict, "stats")["stats"]["rejected_access_denied"] >= 2  # retried within the grace period
    assert strict.count() == 0 and documents(strict, "OPENSEARCH_DLQ_INDEX") == {}

    front(strict, "config", {"deny_access": False})
    log = tmp_path / "resumed.log"
    with flow_process(strict, *args, log=log) as proc:
        wait_exit(proc, log, timeout=120)
    result = check_accounting(strict, synthetic_ids(total), "opensearch bulk denied then granted", record_property)
    assert result.dead == {}
