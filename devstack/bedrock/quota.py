"""Requests-per-minute and tokens-per-minute quotas, enforced the way Bedrock does.

Sliding 60 s window. A request is admitted only if both the request count and the token total of the window
stay within quota; its tokens are reserved at admission as input tokens + maxTokens (what Bedrock deducts
up front, maxTokens not multiplied) and corrected when it finishes to input + output tokens x the model's
burndown rate (5 for the Claude 4 generation: one output token burns five quota tokens; `burned`).
Rejected requests consume nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 60.0


@dataclass
class Reservation:
    at: float
    tokens: int


@dataclass
class QuotaDenied(Exception):
    """Which quota would be exceeded: "requests" or "tokens"."""

    which: str


@dataclass
class Quota:
    rpm: int = 0  # 0 = unlimited
    tpm: int = 0
    clock: Callable[[], float] = time.monotonic
    _entries: deque[Reservation] = field(default_factory=deque)

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0].at <= now - WINDOW_S:
            self._entries.popleft()

    def usage(self) -> dict[str, int]:
        self._expire(self.clock())
        return {"requests": len(self._entries), "tokens": sum(e.tokens for e in self._entries)}

    def reserve(self, tokens: int) -> Reservation:
        """Admit a request of `tokens` or raise QuotaDenied."""
        now = self.clock()
        self._expire(now)
        if self.rpm and len(self._entries) + 1 > self.rpm:
            raise QuotaDenied("requests")
        if self.tpm and sum(e.tokens for e in self._entries) + tokens > self.tpm:
            raise QuotaDenied("tokens")
        entry = Reservation(now, tokens)
        self._entries.append(entry)
        return entry

    @staticmethod
    def burned(input_tokens: int, output_tokens: int, output_burndown: int) -> int:
        """The quota tokens a finished request used, as Bedrock counts them."""
        return input_tokens + output_tokens * max(1, output_burndown)

    @staticmethod
    def settle(reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation to what the request really used (the entry keeps its admission time)."""
        reservation.tokens = max(0, actual_tokens)

    def reset(self) -> None:
        self._entries.clear()
