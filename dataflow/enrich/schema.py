"""The answer's JSON schema for Bedrock structured outputs (Converse `outputConfig.textFormat`).

With structured output the answer is keyed by request-local review id, `{"1": {"summary", "sentiment"}, ...}`:
the ids are the schema's required properties, so the model cannot drop, repeat or invent one, and the answer
needs no `"results"` wrapper or `"id"` fields. Every object says `additionalProperties: false`, which Bedrock
requires. The summary carries a `pattern` (`SUMMARY_PATTERN`): text without a sentence end, then one `.`, `!` or
`?`, so constrained decoding cannot write a second sentence (the one invalid answer the llm backend gave under
structured output; BENCHMARKS.md "Packing"). Claude's structured outputs support simple regex patterns (classes,
`+`, anchors) but not `minLength`/`maxLength`, so length stays a check. `dataflow.enrich.prompt`'s checks stay
in any case: one sentence, not empty, not too long. One schema per pack size: Bedrock compiles a grammar the
first time it sees a schema and caches it for 24 hours, so a flow uses at most BEDROCK_REVIEWS_PER_REQUEST of
them (a retry is a pack of one).
"""

from __future__ import annotations

from functools import lru_cache

import orjson

SCHEMA_NAME = "review_answers"
SENTIMENTS = ("positive", "negative")
# One sentence: no sentence end or line break inside, one at the end. Stricter than the validator (which lets
# "Dr. No" through), never looser, and within the regex subset Bedrock accepts (no {n,m}, no lookaround).
SUMMARY_PATTERN = r"^[^.!?\n]+[.!?]$"

ENTRY = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "description": "one sentence in English", "pattern": SUMMARY_PATTERN},
        "sentiment": {"type": "string", "enum": list(SENTIMENTS)},
    },
    "required": ["summary", "sentiment"],
    "additionalProperties": False,
}


def answer_schema(count: int) -> dict:
    """The schema of the answer to a request of `count` reviews (ids "1".."count")."""
    ids = [str(i) for i in range(1, count + 1)]
    return {
        "type": "object",
        "$defs": {"entry": ENTRY},  # one definition, referenced per id: the schema is input the model reads
        "properties": {ident: {"$ref": "#/$defs/entry"} for ident in ids},
        "required": ids,
        "additionalProperties": False,
    }


@lru_cache(maxsize=64)
def _schema_text(count: int) -> str:
    return orjson.dumps(answer_schema(count)).decode()


def output_config(count: int) -> dict:
    """Converse `outputConfig` for `count` reviews; Bedrock takes the schema as a JSON string."""
    structure = {"jsonSchema": {"schema": _schema_text(count), "name": SCHEMA_NAME}}
    return {"textFormat": {"type": "json_schema", "structure": structure}}
