"""One batch record: read from an input line, answered by the server's backend, written as an output line.

Validation (status Validating) checks what Bedrock documents it checks: each line is a JSON object with a
`modelInput` object; not whether `modelInput` fits the model. That is found per record at inference: a record
whose body the model refuses gets `error` {errorCode: 400, errorMessage} in place of `modelOutput`, as on
Bedrock, and the job goes on. Omitted `recordId`s get an 11-character one, as Bedrock adds them.
"""

from __future__ import annotations

import random
import string
import time
from dataclasses import dataclass, replace

import orjson

from devstack.bedrock.backends import Backend, ModelResult, estimate_tokens
from devstack.bedrock.errors import BedrockError
from devstack.bedrock.faults import Faults
from devstack.bedrock.models import ModelSpec
from devstack.bedrock.wire import check_context, converse_body, invoke_body, parse_converse, parse_invoke

TOOLS_UNSUPPORTED = "Tool use (toolConfig) is not supported for batch inference jobs of the Converse invocation type."


class InvalidInput(Exception):
    """An input file Bedrock's validation refuses: the job fails with this message."""


@dataclass
class Record:
    record_id: str
    model_input: dict


@dataclass
class Answer:
    line: dict  # the output line: recordId, modelInput, and modelOutput or error
    ok: bool
    input_tokens: int = 0
    output_tokens: int = 0


def parse_file(raw: bytes, name: str, rng: random.Random) -> list[Record]:
    records = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise InvalidInput(f"Line {number} of {name} is not valid JSON.") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("modelInput"), dict):
            raise InvalidInput(f"Line {number} of {name} must be a JSON object with a modelInput object.")
        record_id = doc.get("recordId")
        if record_id is None:
            record_id = "".join(rng.choices(string.ascii_uppercase + string.digits, k=11))
        records.append(Record(str(record_id), doc["modelInput"]))
    return records


def _error(record: Record, err: BedrockError) -> Answer:
    line = {"recordId": record.record_id, "modelInput": record.model_input}
    line["error"] = {"errorCode": err.status, "errorMessage": err.message}
    return Answer(line, ok=False)


async def answer(
    record: Record,
    *,
    backend: Backend,
    model_id: str,
    spec: ModelSpec,
    invocation_type: str,
    faults: Faults,
    error_rate: float,
    malformed_rate: float,
    rng: random.Random,
) -> Answer:
    """The output line for one record; never raises for a bad record."""
    started = time.monotonic()
    try:
        if invocation_type == "Converse":
            if "toolConfig" in record.model_input:  # Bedrock's batch page: such records "fail with a 400 error"
                raise BedrockError("ValidationException", TOOLS_UNSUPPORTED)
            request = parse_converse(model_id, record.model_input, spec)
        else:
            request = parse_invoke(model_id, record.model_input, spec)
        check_context(estimate_tokens(request.all_text()), request.max_tokens, spec.context_tokens)
        if error_rate and rng.random() < error_rate:
            raise BedrockError("InternalServerException")
        result: ModelResult = await backend.generate(request)
        if malformed_rate and rng.random() < malformed_rate:
            text = faults.malformed_text([ident for ident, _ in request.reviews()])
            result = replace(result, text=text, output_tokens=max(1, len(text) // 4), stop_reason="end_turn")
    except BedrockError as err:
        return _error(record, err)
    latency_ms = int((time.monotonic() - started) * 1000)
    output = converse_body(result, latency_ms) if invocation_type == "Converse" else invoke_body(request, result)
    line = {"recordId": record.record_id, "modelInput": record.model_input, "modelOutput": output}
    return Answer(line, ok=True, input_tokens=result.input_tokens, output_tokens=result.output_tokens)
