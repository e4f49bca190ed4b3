"""The Kinesis source alone, held back by enrichment buffers that never free room: what waiting costs.

Run as `python -m bytewax.run benchmarks.source_hold_flow -w 2` (used by `benchmarks.kinesis_source`). The
buffer gauge is registered full, so every partition with a backlog only ever looks at the room and waits.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink

from dataflow.channels.backpressure import BufferGauge
from dataflow.kinesis_source import KinesisSource
from dataflow.settings import load_settings

buffers = BufferGauge()
buffers.register(id(buffers), 0)  # a buffer with no room, forever

flow = Dataflow("source_hold")
records = op.input("kinesis", flow, KinesisSource(load_settings(), buffers=buffers))
op.output("out", records, TestingSink([]))
