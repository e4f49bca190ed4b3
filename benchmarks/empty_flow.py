"""A Bytewax flow that never has data: what Bytewax's own loop costs while idle (the floor under `idle_cpu`).

Bytewax 0.21 parks each worker thread for at most 1 ms per step and wakes the main thread every 1 ms to check
for signals (src/worker.rs, src/run.rs), so an idle flow is not free; the waiting benchmark measures this flow
beside the real one to tell the framework's share from ours. Run: `python -m bytewax.run benchmarks.empty_flow`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

PARTS = 8  # as many as the real flow's default KINESIS_PARTITIONS


class _Never(StatefulSourcePartition[None, None]):
    def next_batch(self) -> list[None]:
        return []

    def next_awake(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)

    def snapshot(self) -> None:
        return None


class _NeverSource(FixedPartitionedSource[None, None]):
    def list_parts(self) -> list[str]:
        return [str(i) for i in range(PARTS)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Never:
        return _Never()


class _Drop(StatelessSinkPartition[None]):
    def write_batch(self, items: list[None]) -> None:
        pass


class _DropSink(DynamicSink[None]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Drop:
        return _Drop()


flow = Dataflow("empty")
op.output("out", op.input("in", flow, _NeverSource()), _DropSink())
