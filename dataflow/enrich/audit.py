"""The packing audit: does the model answer a review in a pack as it answers it alone?

Packing (BEDROCK_REVIEWS_PER_REQUEST > 1) pays the instructions once per pack, but a model may mix the reviews
of a pack up. The only model measured here did (BENCHMARKS.md, "Packing and answer quality"); Bedrock's models
cannot be measured without an account. So a deployment that packs measures it on its own traffic: from every
BEDROCK_PACKING_AUDIT_EVERY-th packed request (from each of the first ten) one answer is asked again, alone,
through the same window and quota, and the two sentiments are compared: at 50, 2% more requests and, at 8
reviews per request, 0.25% more reviews asked. When the evidence says they agree less often than
BEDROCK_PACKING_MIN_AGREEMENT (after MIN_AUDITS comparisons, the Wilson 99.9% upper bound of the agreement below
it), the process stops packing, with one line naming the figures. The packed answer is the one indexed; an
audit's answer is only compared, and an audit that fails is counted as such, never retried or dead-lettered.

Audits begin BEDROCK_PACKING_AUDIT_QUIET_S (60 s) after the process's first pack: the first minute's
requests set each worker's pace under a per-minute quota (concurrency/pacer.py), and ten one-review requests
among them raised it above what a tokens-per-minute quota admits for packs (2-8% of requests throttled a
minute later; BENCHMARKS.md). Left out of the pacer's count instead, they lowered it under a
requests-per-minute quota, where they count in full.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from dataflow import metrics
from dataflow.records import EnrichedReview
from dataflow.settings import Settings

log = logging.getLogger("dataflow.enrich.engine")  # the engine's lines, under one logger name

AuditResult = Literal["agree", "disagree", "failed"]


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (sound at small n and near 0 or 1, unlike p +- 2 se)."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n hits the bound is exactly 0 or 1; the float arithmetic can miss it by an ulp.
    return (0.0 if hits == 0 else max(0.0, centre - half)), (1.0 if hits == n else min(1.0, centre + half))


MIN_AUDITS = 10  # comparisons before packing may be turned off: one early disagreement is not evidence
# The bound that decides is the 99.9% one: it is checked after every comparison of a run, and a model that agrees
# 99% of the time must rarely be turned off by chance (simulated over 1,000 audits: 0.2% at 99%, 0.5% at 98%,
# against 1.9% and 8.6% with the 95% bound), while one at chance is still caught at the 10th comparison.
DECISION_Z = 3.29


@dataclass
class PackingAudit:
    """The audit of one process's engines (each on its own thread); `packing` turns False, for good, once their
    packed answers are shown to disagree."""

    name: str  # who audits, in its log lines: "process" for the flow's shared audit
    every: int  # 0: no audit
    min_agreement: float
    picked: int = 0
    since: int = 0  # packed requests answered since the last audit was picked
    audited: int = 0
    agreed: int = 0
    packing: bool = True
    quiet_s: float = 0.0  # no audit until this long after the first pack
    clock: Callable[[], float] = time.monotonic
    _first_pack: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, name: str, settings: Settings) -> PackingAudit:
        s = settings
        return cls(
            name,
            s.bedrock_packing_audit_every,
            s.bedrock_packing_min_agreement,
            quiet_s=s.bedrock_packing_audit_quiet_s,
        )

    def pick(self, answers: list[EnrichedReview]) -> EnrichedReview | None:
        """Of one pack's valid answers, the one to ask again alone, if this pack is the `every`-th (every pack until
        MIN_AUDITS are picked: a verdict within the first packs, for 10 requests more); the position turns, as a model
        may mix up only the later ones."""
        if self.every <= 0 or not self.packing or not answers:
            return None
        with self._lock:
            now = self.clock()
            if self._first_pack is None:
                self._first_pack = now
            if now - self._first_pack < self.quiet_s:
                return None
            self.since += 1
            if self.since < (1 if self.picked < MIN_AUDITS else self.every):
                return None
            self.since = 0
            self.picked += 1
            return answers[self.picked % len(answers)]

    def record(self, packed: EnrichedReview, alone: EnrichedReview | None) -> AuditResult:
        """Compare a packed answer with the review's answer alone (None: the audit request failed)."""
        if alone is None:
            metrics.PACKING_AUDITS.labels("failed").inc()
            return "failed"
        agree = alone.sentiment == packed.sentiment
        with self._lock:
            self.audited += 1
            self.agreed += agree
            low, high = wilson(self.agreed, self.audited, DECISION_Z)
            turn_off = self.packing and self.audited >= MIN_AUDITS and high < self.min_agreement
            if turn_off:
                self.packing = False
        result: AuditResult = "agree" if agree else "disagree"
        metrics.PACKING_AUDITS.labels(result).inc()
        if not agree:
            log.info(
                "enrich.packing_disagrees audit=%s review_id=%s packed=%s alone=%s agreed=%d audited=%d",
                self.name,
                packed.review.review_id,
                packed.sentiment,
                alone.sentiment,
                self.agreed,
                self.audited,
            )
        if turn_off:
            log.warning(
                "enrich.packing_off audit=%s agreed=%d audited=%d agreement_99.9%%=%.3f-%.3f min=%.2f: packed answers "
                "disagree with the model's answers alone, so this process sends one review per request from now; "
                "set BEDROCK_REVIEWS_PER_REQUEST=1 for this model",
                self.name,
                self.agreed,
                self.audited,
                low,
                high,
                self.min_agreement,
            )
        return result
