"""Run-time knobs: simulated latency, injected faults, quotas, backend concurrency, load shedding, strictness.

Set per server start from CLI flags and changed while running with `POST /_admin/config` (a partial JSON
object of the fields below). Every probability is in [0, 1]; 0 for quotas and concurrency means unlimited.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields
from enum import StrEnum

from devstack.bedrock.errors import AUTH_ERROR_STATUS, ERROR_STATUS

FAULT_KINDS = ("throttle", "error", "timeout", "malformed")
AUTH_ERRORS = ("AccessDeniedException", *AUTH_ERROR_STATUS)
SHED_ERRORS = ("ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException")


class LatencyDistribution(StrEnum):
    """How `latency_mean_ms` is drawn per request. A hosted model's latency varies on its own, independent of
    the load (p99 several times p50): constant latency is the friendly case a window controller can misread."""

    CONSTANT = "constant"
    LOGNORMAL = "lognormal"  # spread `latency_sigma` (0.5: p99 about 3x p50)
    EXPONENTIAL = "exponential"  # the memoryless extreme: p99 about 6.6x p50


@dataclass
class Knobs:
    latency_ms: float = 0.0  # fixed added latency per request
    latency_mean_ms: float = 0.0  # random added latency with this mean, drawn from latency_distribution
    latency_distribution: LatencyDistribution = LatencyDistribution.LOGNORMAL
    latency_median_ms: float = 0.0  # lognormal added latency given by its median, used when > 0
    latency_sigma: float = 0.0  # lognormal sigma for both lognormal knobs (0 = always the median)
    latency_per_output_token_ms: float = 0.0  # added per generated output token
    straggler_marker: str = ""  # a request whose review text contains this ...
    straggler_ms: float = 0.0  # ... takes this much longer (benchmarks: one slow request among many)
    throttle_rate: float = 0.0  # probability of an injected 429 ThrottlingException
    error_rate: float = 0.0  # probability of an injected 5xx
    error_codes: tuple[str, ...] = ("InternalServerException", "ServiceUnavailableException")
    timeout_rate: float = 0.0  # probability of holding the request, then 408 ModelTimeoutException
    timeout_hold_s: float = 10.0
    malformed_rate: float = 0.0  # probability of a 200 whose text breaks the answer contract
    fail_with: str | None = None  # answer every model request with this modeled error (drills, tests)
    rpm: int = 0  # requests-per-minute quota
    tpm: int = 0  # tokens-per-minute quota
    output_burndown: int = 0  # quota tokens each output token burns; 0 = the model's own rate (models.py)
    max_concurrency: int = 0  # backend calls at once (0 = the backend's own slot count, if any); the rest queue
    queue_timeout_s: float = 20.0  # shed what could not finish within this (the caller's timeout); 0 = never shed
    max_queue: int | None = None  # an explicit cap on queued requests instead of the measured one
    shed_with: str = "ThrottlingException"  # the error excess requests get at once (see SHED_ERRORS)
    auth_error: str | None = None  # answer every request with this credentials/permission error (AUTH_ERRORS)
    context_tokens: int = 0  # the model's context window in (estimated) tokens; 0 = the model's own (200k)
    extra_model_ids: tuple[str, ...] = ()  # ids accepted besides the known Anthropic models and profiles
    legacy_model_ids: tuple[str, ...] = ()  # foundation-model ids GetFoundationModel reports as LEGACY
    schema_compile_ms: float = 0.0  # first use of a structured-output schema waits this long (grammar compile)
    paused: bool = False  # requests that got a backend slot wait there until unpaused (tests: a stuck model)
    seed: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in ("throttle_rate", "error_rate", "timeout_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        for name in (
            "latency_ms",
            "latency_mean_ms",
            "latency_median_ms",
            "latency_sigma",
            "latency_per_output_token_ms",
            "straggler_ms",
            "timeout_hold_s",
            "rpm",
            "tpm",
            "output_burndown",
            "max_concurrency",
            "queue_timeout_s",
            "context_tokens",
            "schema_compile_ms",
        ):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_queue is not None and self.max_queue < 0:
            raise ValueError("max_queue must not be negative")
        self.latency_distribution = LatencyDistribution(self.latency_distribution)
        if self.shed_with not in SHED_ERRORS:
            raise ValueError(f"shed_with must be one of {', '.join(SHED_ERRORS)}, got {self.shed_with!r}")
        if self.auth_error is not None and self.auth_error not in AUTH_ERRORS:
            raise ValueError(f"auth_error must be one of {', '.join(AUTH_ERRORS)}, got {self.auth_error!r}")
        self.error_codes = tuple(self.error_codes)
        self.extra_model_ids = tuple(self.extra_model_ids)
        self.legacy_model_ids = tuple(self.legacy_model_ids)
        for code in (*self.error_codes, *([self.fail_with] if self.fail_with else [])):
            if code not in ERROR_STATUS:
                raise ValueError(f"unknown error code {code!r}; known: {', '.join(ERROR_STATUS)}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["error_codes"] = list(self.error_codes)
        out["extra_model_ids"] = list(self.extra_model_ids)
        out["legacy_model_ids"] = list(self.legacy_model_ids)
        out["latency_distribution"] = str(self.latency_distribution)
        return out

    def updated(self, changes: dict) -> Knobs:
        """A new Knobs with `changes` applied; ValueError on an unknown field or a bad value."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(unknown)}; known: {', '.join(known)}")
        merged = {**self.to_dict(), **changes}
        try:
            return Knobs(**{k: _coerce(k, v) for k, v in merged.items()})
        except (TypeError, ValueError) as err:
            raise ValueError(str(err)) from err


_STRINGS = ("fail_with", "straggler_marker", "shed_with", "auth_error", "latency_distribution")
_TUPLES = ("error_codes", "extra_model_ids", "legacy_model_ids")
_INTS = ("rpm", "tpm", "output_burndown", "max_concurrency", "max_queue", "context_tokens", "seed")


def _coerce(name: str, value: object) -> object:
    if value is None or name in _STRINGS:
        return value
    if name in _TUPLES:
        if isinstance(value, str):
            raise ValueError(f"{name} must be a list")
        return tuple(value)  # type: ignore[arg-type]
    if name == "paused":
        if not isinstance(value, bool):
            raise ValueError("paused must be true or false")
        return value
    if name in _INTS:
        return int(value)  # type: ignore[arg-type]
    return float(value)  # type: ignore[arg-type]


@dataclass
class FaultPlan:
    """What one request will suffer, drawn once at admission."""

    kind: str | None = None  # one of FAULT_KINDS or None
    error_code: str | None = None


class Faults:
    """Draws faults and latencies from the current knobs with one seeded RNG."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self.rng = random.Random(knobs.seed)

    def set(self, knobs: Knobs) -> None:
        if knobs.seed != self.knobs.seed:
            self.rng = random.Random(knobs.seed)
        self.knobs = knobs

    def draw(self) -> FaultPlan:
        k = self.knobs
        if k.fail_with:
            return FaultPlan("error", k.fail_with)
        codes = {"throttle": "ThrottlingException", "timeout": "ModelTimeoutException"}
        for kind, rate in (("throttle", k.throttle_rate), ("error", k.error_rate), ("timeout", k.timeout_rate)):
            if rate and self.rng.random() < rate:
                return FaultPlan(kind, codes.get(kind) or self.rng.choice(k.error_codes))
        if k.malformed_rate and self.rng.random() < k.malformed_rate:
            return FaultPlan("malformed")
        return FaultPlan()

    def latency_s(self, output_tokens: int, text: str = "") -> float:
        """Added latency for a successful request, in seconds."""
        k = self.knobs
        ms = k.latency_ms + k.latency_per_output_token_ms * output_tokens
        if k.straggler_marker and k.straggler_marker in text:
            ms += k.straggler_ms
        if k.latency_median_ms > 0:
            ms += k.latency_median_ms * math.exp(k.latency_sigma * self.rng.gauss(0.0, 1.0))
        if k.latency_mean_ms > 0:
            ms += self._draw(k.latency_mean_ms)
        return ms / 1000.0

    def _draw(self, mean_ms: float) -> float:
        k = self.knobs
        if k.latency_distribution is LatencyDistribution.EXPONENTIAL:
            return self.rng.expovariate(1.0 / mean_ms)
        if k.latency_distribution is LatencyDistribution.LOGNORMAL:
            # The median that gives this mean: mean = median x exp(sigma^2 / 2).
            return mean_ms * math.exp(k.latency_sigma * self.rng.gauss(0.0, 1.0) - k.latency_sigma**2 / 2)
        return mean_ms

    def malformed_text(self, ids: list[str]) -> str:
        """A 200 answer that breaks the contract in one of the ways real models do.

        Each draw differs (a sampled model rarely repeats itself word for word), so a client that stops
        after the same invalid answer twice sees that only from a model that is really stuck.
        """
        first = ids[0] if ids else "1"
        word = self.rng.choice(("quality", "price", "delivery", "battery", "plot", "acting", "fit", "taste"))
        cut = self.rng.randint(3, 40)
        variants = [
            f"I'm sorry, but I can't help with that request about the {word} (ref {self.rng.randint(0, 99999)}).",
            '"results": [{"id": "' + first + '", "summary": "Truncated answer about the ' + word[:cut],
            '"results": [{"id": "' + first + f'", "summary": "", "sentiment": "neutral", "topic": "{word}"}}]}}',
            f'"answer": "The review is positive about the {word}.", "n": {self.rng.randint(0, 99999)}}}',
        ]
        return self.rng.choice(variants)
