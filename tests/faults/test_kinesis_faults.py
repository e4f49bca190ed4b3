"""GetRecords failing at the wire: expired shard iterators and throughput-exceeded errors, answered by a
proxy in front of the local Kinesis exactly as Kinesis does (HTTP 400, awsJson1.1 `__type`). The source
must re-acquire its iterator from the last checkpoint and lose or repeat nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.fault_proxy import Decision, FaultProxy, aws_json_error
from tests.faults.accounting import bedrock_summary, check_accounting, flow_process, log_size, synthetic_ids, wait_exit
from tests.integration.conftest import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

GET_RECORDS = "Kinesis_20131202.GetRecords"
EXPIRED = aws_json_error("ExpiredIteratorException", "Iterator expired", "expired")
THROUGHPUT = aws_json_error(
    "ProvisionedThroughputExceededException", "Rate exceeded for shard in account 123456789012.", "throughput"
)
# botocore does not retry for the source (dataflow/kinesis_source/source.py), so every throughput error reaches it
# and is retried after the partition's backoff. A burst of 16 in a row hits every shard whatever the interleaving.
THROUGHPUT_BURSTS = (range(15, 31),)
EXPIRED_EVERY = 5  # every 5th other GetRecords call: the iterator has expired


class KinesisFaults:
    """Deterministic by call number, so a failure reproduces with the same counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0

    def inspect(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Decision:
        if headers.get("X-Amz-Target") != GET_RECORDS:
            return None
        with self.lock:
            self.calls += 1
            n = self.calls
        if any(n in burst for burst in THROUGHPUT_BURSTS):
            return THROUGHPUT
        return EXPIRED if n % EXPIRED_EVERY == 2 else None


def test_expired_iterators_and_throughput_errors_resume_from_the_checkpoint(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    total = 400
    faulty.produce(total)
    faults = KinesisFaults()
    log = tmp_path / "flow.log"
    with FaultProxy(faulty.env["AWS_ENDPOINT_URL_KINESIS"], inspect=faults.inspect) as proxy:
        # Small reads: many GetRecords calls per shard, so failures land mid-shard, after a checkpoint.
        env = {"AWS_ENDPOINT_URL_KINESIS": proxy.url, "KINESIS_GET_RECORDS_LIMIT": "10"}
        with flow_process(faulty, "-w", "2", log=log, extra_env=env) as proc:
            wait_exit(proc, log, timeout=90, progress=lambda: log_size(log))
        expired, throughput = proxy.count("expired"), proxy.count("throughput")
    text = log.read_text()
    seen_expired = text.count("error=ExpiredIteratorException")
    seen_throughput = text.count("error=ProvisionedThroughputExceededException")
    check_accounting(
        faulty,
        synthetic_ids(total),
        "kinesis expired+throughput",
        record_property,
        f"get_records={faults.calls} injected_expired={expired} injected_throughput={throughput} "
        f"source_saw_expired={seen_expired} source_saw_throughput={seen_throughput} {bedrock_summary(faulty)}",
    )
    assert expired > 0 and seen_expired == expired, "every expired iterator should reach the source as such"
    assert throughput > 0 and seen_throughput == throughput, "every throughput error should reach the source as such"
