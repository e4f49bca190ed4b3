"""reviewstream's Bytewax dataflow: Kinesis -> parse -> Bedrock enrichment -> OpenSearch.

`python -m bytewax.run dataflow.flow` runs it. Items flow one way, one subpackage per stage; control flows
back only through channels/, which `pipeline.build_flow` creates and passes to both ends.

- flow.py, pipeline.py        the entry point; the steps wired and the channels created
- settings.py                 every setting, read from the environment here only
- records.py, parse.py        the items and their documents; record validation
- metrics.py, logging_setup.py, heartbeat.py, backoff.py   shared services of every stage
- kinesis_source/             the source: every shard of the stream, checkpointed per shard
- enrich/                     Bedrock enrichment, with its concurrency controller in enrich/concurrency/
- opensearch_sink/            the sink: results and dead letters, bulk-indexed idempotently
- channels/                   backpressure (enrichment -> source) and store acknowledgements (sink -> enrich)
"""
