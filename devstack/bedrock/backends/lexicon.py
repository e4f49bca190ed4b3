"""Fast deterministic backend: VADER lexicon sentiment and an extractive one-sentence summary.

Used by tests and benchmarks, where what matters is the wire behaviour and the answer contract, not
language quality. Same input, same output, microseconds per review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from devstack.bedrock.backends import ModelRequest, ModelResult, estimate_tokens, keyed_answer, render_answer

MAX_SUMMARY_WORDS = 25
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_INNER_STOP = re.compile(r"[.!?]+(?=[\"')\]]*(\s|$))")
_WORD = re.compile(r"[A-Za-z']+")


def summarise(text: str) -> str:
    """The most informative of the first sentences, trimmed to one clean sentence ending in a period."""
    flat = " ".join(text.split())
    if not flat:
        return "The review is empty."
    sentences = [s for s in _SENTENCE_SPLIT.split(flat) if s.strip()][:5] or [flat]
    # The first sentence that says something (several real words) beats a terse opener like "Wow!".
    best = next((s for s in sentences if len(_WORD.findall(s)) >= 4), None) or max(
        sentences, key=lambda s: len(_WORD.findall(s))
    )
    words = best.split()[:MAX_SUMMARY_WORDS]
    sentence = _INNER_STOP.sub("", " ".join(words)).strip(" ,;:-\"'()[]")
    sentence = sentence.replace("\n", " ")
    if len(_WORD.findall(sentence)) == 0:
        return "The review gives no details."
    sentence = sentence[0].upper() + sentence[1:]
    return sentence + "."


@dataclass
class LexiconBackend:
    name: str = "lexicon"
    analyzer: SentimentIntensityAnalyzer = field(default_factory=SentimentIntensityAnalyzer)

    def answer(self, reviews: list[tuple[str, str]], keyed: bool = False) -> str:
        results = []
        for ident, text in reviews:
            compound = self.analyzer.polarity_scores(text)["compound"]
            results.append(
                {"id": ident, "summary": summarise(text), "sentiment": "positive" if compound >= 0 else "negative"}
            )
        return render_answer(results, keyed)

    async def generate(self, request: ModelRequest) -> ModelResult:
        reviews = request.reviews()
        full = self.answer(reviews, keyed_answer(request))
        prefill = request.prefill
        # Claude continues a prefill; the canonical answer starts with "{", so a "{" prefill is a prefix.
        new_text = full[len(prefill) :] if prefill and full.startswith(prefill) else full
        output_tokens = estimate_tokens(new_text)
        stop_reason = "end_turn"
        if output_tokens > request.max_tokens:
            new_text = new_text[: request.max_tokens * 4]
            output_tokens, stop_reason = request.max_tokens, "max_tokens"
        return ModelResult(
            text=new_text,
            input_tokens=estimate_tokens(request.all_text()),
            output_tokens=output_tokens,
            stop_reason=stop_reason,
            reviews=len(reviews),
        )

    async def close(self) -> None:
        return None
