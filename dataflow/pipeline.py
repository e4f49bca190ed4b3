"""Assemble the dataflow: source -> parse -> enrich -> branch -> OpenSearch results / dead letters.

`build_flow` takes its collaborators as arguments so tests can swap the outermost boundaries (the Kinesis
source, the Bedrock client, the sinks) while the steps in between stay the production ones.

Items flow one way. The three control signals that flow back are created here, once per flow, and handed to
both of their ends (dataflow/channels/): the backpressure gauge (enrichment -> source: how much room is
left), the store acknowledgements (results sink -> enrichment: what is stored) and the shard routes (enrichment
-> keyer: which key of a shard is enriched in this process; the source tells it how wide the stream is). So is
the heartbeat the source beats for the liveness probe.
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from dataflow import metrics
from dataflow.channels.backpressure import BufferGauge
from dataflow.channels.routes import ShardRoutes
from dataflow.channels.store_acks import StoreAcks
from dataflow.cluster import ClusterShape
from dataflow.enrich.bedrock import ClientFactory, aiobotocore_client
from dataflow.enrich.registry import EngineRegistry
from dataflow.enrich.step import EnrichLogic, InFlightState, Routed
from dataflow.heartbeat import Heartbeat
from dataflow.kinesis_source.source import KinesisSource
from dataflow.opensearch_sink.sink import OpenSearchSink
from dataflow.parse import parse_record
from dataflow.records import DeadLetter, EnrichedReview, KinesisRecord, Review
from dataflow.settings import Settings


def build_flow(
    settings: Settings,
    *,
    source: Source[KinesisRecord] | None = None,
    bedrock_client_factory: ClientFactory = aiobotocore_client,
    registry: EngineRegistry | None = None,
    results_sink: Sink[Any] | None = None,
    dead_letter_sink: Sink[Any] | None = None,
    flow_id: str = "reviewstream",
) -> Dataflow:
    # Backpressure: the engines report what they hold, the Kinesis source reads only what fits.
    if registry is None:
        buffers = BufferGauge()
        registry = EngineRegistry(settings, bedrock_client_factory, buffers)
    else:
        buffers = registry.buffers  # a registry passed in brings its own gauge
    # Store acknowledgements: the production results sink writes in the background and acknowledges what it
    # stored, so enrichment keeps emitted results in its checkpoint until then (dataflow/channels/store_acks.py).
    # A sink passed in by a caller writes before it returns, as Bytewax assumes.
    acks = StoreAcks() if results_sink is None and settings.opensearch_max_pending_docs > 0 else None
    # Shard routes: which key of a shard is enriched in this process (dataflow/channels/routes.py); `auto`
    # decides at the source's first listing, from the stream's width and the cluster's shape.
    routes = ShardRoutes(settings.enrich_local_key_tries, ClusterShape.from_bytewax_run())
    buffers.route_search(routes.searching)  # the source reads a probe's worth while a shard's key is searched for
    source = source or KinesisSource(
        settings, buffers=buffers, heartbeat=Heartbeat(settings.heartbeat_file), on_listing=routes.stream_listed
    )

    flow = Dataflow(flow_id)
    records = op.input("kinesis", flow, source)

    def parse(record: KinesisRecord) -> Review | DeadLetter:
        result = parse_record(record, settings.review_max_chars)
        if isinstance(result, DeadLetter):
            metrics.DEAD_LETTERS.labels("parse", result.error_type).inc()
        return result

    parsed = op.map("parse", records, parse)
    valid = op.branch("valid", parsed, lambda item: isinstance(item, Review))
    # Keyed by shard, under a key this process's enrichment receives: the step gets the key with each review, to
    # report where it arrived.

    def key_by_shard(review: Review) -> tuple[str, Routed]:
        key = routes.key_for(review.shard_id)
        return key, (key, review)

    by_shard = op.map("key_by_shard", valid.trues, key_by_shard)

    def enrich_logic(state: InFlightState | None) -> EnrichLogic:
        return EnrichLogic(registry.for_current_worker(), state, acks, routes)

    enriched = op.stateful_batch("enrich", by_shard, enrich_logic)
    outcomes = op.map("unkey", enriched, lambda key_value: key_value[1])
    succeeded = op.branch("succeeded", outcomes, lambda item: isinstance(item, EnrichedReview))
    dead: Any = op.merge("dead_letters", valid.falses, succeeded.falses)
    op.output("opensearch_results", succeeded.trues, results_sink or OpenSearchSink(settings, "results", acks=acks))
    op.output("opensearch_dead_letters", dead, dead_letter_sink or OpenSearchSink(settings, "dead_letters"))
    return flow
