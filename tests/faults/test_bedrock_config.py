"""The real flow against a Bedrock that refuses our configuration, or one review: a bad configuration halts
the flow and dead-letters nothing (a restart after the fix processes every review); a review too long for the
model is the only one dead-lettered from a packed request (the others fall back to requests of their own).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.faults.accounting import (
    bedrock_stats,
    check_accounting,
    documents,
    flow_process,
    put_raw,
    synthetic_ids,
    wait_exit,
)
from tests.plugins.stack import Pipeline, recovery_args

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]


def _halt(pipeline: Pipeline, args: tuple[str, ...], log: Path, extra_env: dict[str, str] | None = None) -> str:
    with flow_process(pipeline, *args, log=log, extra_env=extra_env) as proc:
        code = proc.wait(timeout=180)
    text = log.read_text()
    assert code != 0, f"the flow should halt; log tail:\n{text[-3000:]}"
    return text


@pytest.mark.parametrize("error", ["AccessDeniedException", "ExpiredTokenException"])
def test_refused_credentials_halt_and_a_restart_after_the_fix_loses_nothing(
    faulty: Pipeline, tmp_path: Path, record_property: Callable[[str, object], None], error: str
) -> None:
    total = 80
    faulty.produce(total)
    args = recovery_args(tmp_path / "recovery", workers=2)
    faulty.bedrock_config(auth_error=error)
    text = _halt(faulty, args, tmp_path / "halted.log")
    halts = [line for line in text.splitlines() if "bedrock.halt" in line]
    assert halts, text[-3000:]
    expected = "bedrock:InvokeModel" if error == "AccessDeniedException" else "credentials"
    assert all(expected in line for line in halts), halts
    assert faulty.count() == 0 and documents(faulty, "OPENSEARCH_DLQ_INDEX") == {}
    refused = bedrock_stats(faulty)["requests"]
    assert refused <= 2 * 16, f"it should stop after a few refusals, not retry every review: {refused}"

    faulty.bedrock_config(auth_error=None)
    log = tmp_path / "resumed.log"
    with flow_process(faulty, *args, log=log) as proc:
        wait_exit(proc, log, timeout=180)
    result = check_accounting(faulty, synthetic_ids(total), f"bedrock {error} then fixed", record_property)
    assert result.dead == {}


def test_unknown_model_id_halts_naming_the_setting(faulty: Pipeline, tmp_path: Path) -> None:
    faulty.produce(20)
    text = _halt(faulty, ("-w", "1"), tmp_path / "flow.log", {"BEDROCK_MODEL_ID": "anthropic.claude-nonexistent-v9"})
    halts = [line for line in text.splitlines() if "bedrock.halt" in line]
    assert halts and "BEDROCK_MODEL_ID=anthropic.claude-nonexistent-v9" in halts[0]
    assert faulty.count() == 0 and documents(faulty, "OPENSEARCH_DLQ_INDEX") == {}


def test_a_review_too_long_for_the_model_is_the_only_dead_letter_of_its_packed_request(
    faulty: Pipeline, record_property: Callable[[str, object], None]
) -> None:
    total = 40
    faulty.produce(total)
    # ~4,400 tokens (17,500 characters, under REVIEW_MAX_CHARS): over the small context window set below, which
    # every synthetic review fits alone (a packed request of long ones may not: those fall back, one by one)
    giant = "This blender is a story in itself. " * 500
    records = [
        orjson.dumps({"review_id": f"giant-{i}", "user_id": "u1", "date_time": 1_700_000_000_000, "text": giant})
        for i in range(2)
    ]
    put_raw(faulty, records, prefix="giant")
    faulty.bedrock_config(context_tokens=4000)
    faulty.run_flow("-w", "2", extra_env={"BEDROCK_REVIEWS_PER_REQUEST": "4"})
    result = check_accounting(
        faulty, synthetic_ids(total) | {"giant-0", "giant-1"}, "bedrock context exceeded, packed 4", record_property
    )
    assert set(result.dead) == {"giant-0", "giant-1"}
    assert {d["error_type"] for d in result.dead.values()} == {"ValidationException"}
    assert all(d["stage"] == "enrich" for d in result.dead.values())
