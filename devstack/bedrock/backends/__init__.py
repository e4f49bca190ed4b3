"""Model backends: given a normalised chat request, produce the assistant's text and token counts.

A backend only generates; wire formats, faults, quotas and latency are the app's job. The reviewstream
prompt contract (reviews in `<review id="N">` blocks of the last user turn, answer
`{"results": [{"id", "summary", "sentiment"}]}`) is parsed here once for every backend.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Protocol

import orjson

BACKENDS = ("lexicon", "llm")

_REVIEW_BLOCK = re.compile(r'<review id="([^"<>]*)">(.*?)</review>', re.DOTALL)


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    text: str


@dataclass(frozen=True)
class ModelRequest:
    """A chat request with the wire format stripped away."""

    model_id: str
    system: str
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float = 0.0
    schema: dict | None = None  # Converse outputConfig's JSON schema (structured output), parsed
    service_tier: str = "default"  # the tier asked for (Converse serviceTier)

    @property
    def prefill(self) -> str:
        """The assistant text the answer must continue (empty when the last turn is the user's)."""
        return self.messages[-1].text if self.messages and self.messages[-1].role == "assistant" else ""

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    def reviews(self) -> list[tuple[str, str]]:
        """(id, unescaped text) of every review block of the last user turn; the whole turn as "1" if none."""
        text = self.last_user_text
        blocks = [(i, html.unescape(body).strip()) for i, body in _REVIEW_BLOCK.findall(text)]
        return blocks or [("1", text.strip())]

    def all_text(self) -> str:
        """What the model reads; a structured-output schema counted as input too (conservative: Bedrock's
        billing of it is not documented on a page we could read)."""
        schema = orjson.dumps(self.schema).decode() if self.schema is not None else ""
        return self.system + "".join(m.text for m in self.messages) + schema


@dataclass(frozen=True)
class ModelResult:
    """The answer as the API returns it (the continuation of any prefill), and what it cost."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str = "end_turn"  # or "max_tokens"
    reviews: int = 0


class Backend(Protocol):
    """A model. Optional attribute `slots: int`: requests it can serve at once (0 or absent = no limit); the
    server then queues and sheds load in front of it (see admission.py)."""

    name: str

    async def generate(self, request: ModelRequest) -> ModelResult: ...

    async def close(self) -> None: ...


def keyed_answer(request: ModelRequest) -> bool:
    """Whether the request's schema asks for the answer keyed by review id (reviewstream's structured form)."""
    schema = request.schema or {}
    return bool(schema) and "results" not in (schema.get("properties") or {})


def render_answer(results: list[dict], keyed: bool) -> str:
    """`{"results": [{"id", "summary", "sentiment"}]}`, or keyed by id: `{"1": {"summary", "sentiment"}}`."""
    if keyed:
        return orjson.dumps({r["id"]: {"summary": r["summary"], "sentiment": r["sentiment"]} for r in results}).decode()
    return orjson.dumps({"results": results}).decode()


def backend_slots(backend: object) -> int:
    """The backend's slot count: its `slots` attribute, else a llama.cpp-style `parallel`, else 0 (unlimited)."""
    for attribute in ("slots", "parallel"):
        value = getattr(backend, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return max(0, value)
    return 0


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate (about 4 characters per token), at least 1."""
    return max(1, math.ceil(len(text) / 4))


def load_backend(name: str, **options: object) -> Backend:
    """The backend called `name`, imported lazily so the lexicon one never needs llama.cpp."""
    if name == "lexicon":
        from devstack.bedrock.backends.lexicon import LexiconBackend

        return LexiconBackend()
    if name == "llm":
        from devstack.bedrock.backends.llm import LlmBackend

        return LlmBackend(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
