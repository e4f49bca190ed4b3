"""Enrichment: each review summarised and classified by Amazon Bedrock (Converse API), asynchronously.

In: `Review`s keyed by shard (dataflow/records.py), and the store acknowledgements of the results writer
(`dataflow.channels.store_acks.StoreAcks`). Out: `EnrichedReview`s and enrich-stage `DeadLetter`s, in
completion order; the reviews it holds, reported on the backpressure channel
(`dataflow.channels.backpressure.BufferGauge`). Both channels are passed in by `dataflow.pipeline`.

- step.py          `EnrichLogic`: the Bytewax `stateful_batch` step (hand-over, emission, snapshot)
- engine.py        `EnrichEngine`: one asyncio loop per worker keeping the window of requests full
- registry.py      `EngineRegistry`: one engine per worker thread of a flow
- bedrock.py       the Bedrock call: the Converse client and one request with its timeout
- outcomes.py      what a request's outcome does to its reviews and to the window
- retry_policy.py  what a review's failed attempt leads to (retry now, later, hold, dead-letter)
- errors.py        a failed call classified: congestion, bad request, bad configuration
- prompt.py        the request (delimited, injection-proof) and the answer's strict validation
- answers.py       a response matched back to the reviews it carried
- pricing.py       token prices, for the cost metric
- wake.py          when the Bytewax side looks for finished results (shared ticks, no 10 ms polling)
- concurrency/     the concurrency controller: AIMD, latency gradient, rate pacer, the window composing them
"""

from dataflow.enrich.registry import EngineRegistry
from dataflow.enrich.step import EnrichLogic, InFlightState

__all__ = ["EngineRegistry", "EnrichLogic", "InFlightState"]
