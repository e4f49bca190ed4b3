"""How long a source held back by full enrichment buffers waits before it looks at the room again."""

from __future__ import annotations

from dataclasses import dataclass

BACKPRESSURE_WAIT_S = 0.02  # first look again this soon when the enrichment buffers are full, then back off


@dataclass
class HoldBack:
    """Results free room; while none completes (a slow model) the wait doubles up to `max_wait_s`, so a long
    wait costs no CPU (Bytewax wakes a source only at its `next_awake`); once room was freed since the last
    look, the buffer is moving and the wait starts again at 20 ms.
    """

    max_wait_s: float
    wait_s: float = BACKPRESSURE_WAIT_S
    held: bool = False
    freed_seen: int = -1

    def hold(self, freed: int) -> None:
        still = self.held and freed == self.freed_seen
        self.wait_s = min(self.wait_s * 2, max(BACKPRESSURE_WAIT_S, self.max_wait_s)) if still else BACKPRESSURE_WAIT_S
        self.held, self.freed_seen = True, freed

    def release(self) -> None:
        self.held = False
