"""The backward channels: control that flows against the items, from a later stage to an earlier one.

Items flow one way (source -> parse -> enrich -> sink). Three signals flow back, and only through these
objects, which `dataflow.pipeline.build_flow` creates once per flow and passes to both ends:

- backpressure.py `BufferGauge`: how full the enrichment buffers are; written by the enrichment engines,
  read by the Kinesis source, which reads only as many records as there is room for
- store_acks.py   `StoreAcks`: which results the background OpenSearch writer has stored; written by the
  sink, read by the enrichment step, which keeps every unstored result in its checkpoint
- routes.py       `ShardRoutes`: which key of a shard reaches an enrichment step of this process; written by
  the enrichment step, read by the keyer, so a shard is enriched in the process that reads it
"""
