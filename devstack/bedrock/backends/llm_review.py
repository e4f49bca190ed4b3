"""How the llm backend asks a small model about one review: the prompt, the truncation and the sentiment score.

The sentiment is not sampled: the prompt ends with the assistant's `Sentiment:` and the model's log-probabilities
for the next token give `score = log P(positive) - log P(negative)` (summed over the spellings of each word found
in llama.cpp's top list); the answer is "positive" when the score exceeds a threshold calibrated on labelled
reviews (see BENCHMARKS.md, "Local model"). A 135M model's greedy pick leans towards one word; the calibrated
score does not, and it is always one of the two values.

One call per review: the grammar lets the model write only ` positive` or ` negative`, then `SUMMARY_CUE` and
one sentence. Every prompt starts with the same instructions, which llama.cpp's prompt cache keeps per slot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Head and tail kept of a long review, in words: reviewers state their verdict at the end, and the model's cost
# grows with the prompt; the median review (~170 words) is kept whole.
HEAD_WORDS = 60
TAIL_WORDS = 140
ELISION = " [...] "

INSTRUCTIONS = "You classify the overall sentiment of customer reviews as positive or negative."

# Calibrated on half of a labelled sample of real movie reviews (BENCHMARKS.md): the model says "positive"
# more readily than "negative", so a review needs a margin above even odds to count as positive.
THRESHOLD = 0.53

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
POSITIVE = ("positive", "pos")
POSITIVE_SPELLINGS = (" positive",)  # as the grammar lets the model write it, for llama.cpp's logit_bias
# Written by the grammar after the sentiment word: it turns the classifier's prompt into a summariser's
# ("Summary:" alone drew "Positive review with a positive tone." and the like from the 135M model).
SUMMARY_CUE = "\n\nIn one sentence, the review says:"
NEGATIVE = ("negative", "neg")


def clip_review(text: str, head: int = HEAD_WORDS, tail: int = TAIL_WORDS) -> str:
    """The review with its middle elided when it is longer than head + tail words (start and verdict kept)."""
    words = _BREAK.sub(" ", text).split()
    if len(words) <= head + tail:
        return " ".join(words)
    return " ".join(words[:head]) + ELISION + " ".join(words[len(words) - tail :])


def review_messages(text: str) -> list[dict]:
    """The chat whose next token is the sentiment word (the assistant turn is a prefill)."""
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "Review: " + clip_review(text)},
        {"role": "assistant", "content": "Sentiment:"},
    ]


@dataclass(frozen=True)
class SentimentScore:
    positive: float  # log-probability of the positive word's spellings (floor - 1 when none is listed)
    negative: float

    @property
    def margin(self) -> float:
        return self.positive - self.negative

    def sentiment(self, threshold: float = THRESHOLD) -> str:
        return "positive" if self.margin > threshold else "negative"


def score_from_top_logprobs(top: Iterable[dict]) -> SentimentScore:
    """Sum the probabilities of each word's spellings among llama.cpp's `top_logprobs` entries."""
    entries = [(str(entry.get("token", "")).strip().lower(), float(entry["logprob"])) for entry in top]
    floor = min((logprob for _, logprob in entries), default=0.0) - 1.0

    def total(words: tuple[str, ...]) -> float:
        mass = sum(math.exp(logprob) for token, logprob in entries if token in words)
        return math.log(mass) if mass > 0 else floor

    return SentimentScore(positive=total(POSITIVE), negative=total(NEGATIVE))
