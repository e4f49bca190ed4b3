"""A run's totals: records by outcome, jobs, tokens and cost, at batch prices and at on-demand prices.

Cost and tokens also go to the live flow's metrics (`reviewstream_bedrock_tokens_total`,
`reviewstream_bedrock_cost_usd_total`), batch tokens at the batch price (`ModelCard.batch_price`, 50% of
on-demand) and the few on-demand requests at the on-demand price.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dataflow import metrics
from dataflow.enrich.catalog import card_for
from dataflow.enrich.pricing import cost_usd, price_per_mtok
from dataflow.records import DeadLetter, EnrichedReview


@dataclass
class Report:
    model_id: str
    enriched: int = 0
    dead_letters: int = 0
    jobs_submitted: int = 0
    jobs_resubmitted: int = 0
    on_demand_records: int = 0
    unknown_records: int = 0  # answers whose recordId maps to no review (dead letters)
    batch_input_tokens: int = 0
    batch_output_tokens: int = 0
    on_demand_input_tokens: int = 0
    on_demand_output_tokens: int = 0

    def count(self, item: EnrichedReview | DeadLetter) -> None:
        if isinstance(item, EnrichedReview):
            self.enriched += 1
            metrics.REVIEWS_ENRICHED.inc()
        else:
            self.dead_letters += 1
            metrics.DEAD_LETTERS.labels(item.stage, item.error_type).inc()

    def tokens(self, input_tokens: int, output_tokens: int, batch: bool) -> None:
        if batch:
            self.batch_input_tokens += input_tokens
            self.batch_output_tokens += output_tokens
            price = card_for(self.model_id).batch_price(self.model_id)
        else:
            self.on_demand_input_tokens += input_tokens
            self.on_demand_output_tokens += output_tokens
            price = price_per_mtok(self.model_id)
        metrics.BEDROCK_TOKENS.labels("input").inc(input_tokens)
        metrics.BEDROCK_TOKENS.labels("output").inc(output_tokens)
        metrics.BEDROCK_COST.inc(cost_usd(input_tokens, output_tokens, price))

    def summary(self) -> dict[str, Any]:
        """The totals with the cost paid and what the same tokens would have cost on demand."""
        on_demand_price = price_per_mtok(self.model_id)
        batch_price = card_for(self.model_id).batch_price(self.model_id)
        batch = cost_usd(self.batch_input_tokens, self.batch_output_tokens, batch_price)
        direct = cost_usd(self.on_demand_input_tokens, self.on_demand_output_tokens, on_demand_price)
        return {
            **asdict(self),
            "batch_cost_usd": round(batch, 9),
            "batch_tokens_on_demand_cost_usd": round(
                cost_usd(self.batch_input_tokens, self.batch_output_tokens, on_demand_price), 9
            ),
            "on_demand_cost_usd": round(direct, 9),
            "cost_usd": round(batch + direct, 9),
        }
