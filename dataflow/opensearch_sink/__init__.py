"""The OpenSearch sink: results and dead letters bulk-indexed, idempotently, each failure by its kind.

In: `EnrichedReview`s (to OPENSEARCH_INDEX) and `DeadLetter`s (to OPENSEARCH_DLQ_INDEX) from the flow (the live
flow and the backfill), each stamped with ENRICHMENT_GENERATION.
Out: documents in OpenSearch, and for results written in the background, acknowledgements of what was stored
(`dataflow.channels.store_acks.StoreAcks`, passed in by `dataflow.pipeline`), read by the enrichment step.

- sink.py              `OpenSearchSink`: the Bytewax sink and its partitions (results, dead letters)
- background_writer.py the OpenSearch writer's thread: a slow bulk request does not stall the worker
- bulk.py              `BulkWriter`: chunking, external versions, split / bisect / retry / halt
- generation.py        enrichment generations: the external version (generation, then arrival) and a conflict's meaning
- errors.py            what an answer means (`FailureKind`), and `OpenSearchHalt`
- templates.py         the index templates and indices, created before any write
- client.py            the opensearch-py client (SigV4 for Amazon OpenSearch Service)
"""

from dataflow.opensearch_sink.errors import OpenSearchHalt
from dataflow.opensearch_sink.sink import OpenSearchSink

__all__ = ["OpenSearchHalt", "OpenSearchSink"]
