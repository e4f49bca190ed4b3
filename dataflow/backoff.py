"""Exponential backoff with full jitter, for every retry of the pipeline (Kinesis reads, Bedrock, OpenSearch).

Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): wait a uniform time in
[0, min(cap, base * 2^attempt)]. Spreading retries over the whole interval is what keeps many workers that
failed together from retrying together. `floor` keeps a retry from coming sooner than a service allows
(Kinesis: 5 GetRecords calls per second per shard).
"""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(
    attempt: int, base: float, cap: float, floor: float = 0.0, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number `attempt` (0-based), never below `floor`."""
    return max(floor, rand() * min(cap, base * (2**attempt)))
