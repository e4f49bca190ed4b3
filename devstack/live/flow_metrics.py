"""The flow's Prometheus text, reduced to what the live page shows."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class FlowMetrics:
    """Totals over workers and shards; quantiles in seconds from the latency histogram's buckets."""

    records_read: float = 0.0
    lag_ms: float = 0.0  # the largest MillisBehindLatest over shards
    in_flight: float = 0.0
    window_limit: float = 0.0
    pace_rps: float = 0.0  # what the pacers allow, summed over workers (0: none paces)
    requests: dict[str, float] = field(default_factory=dict)  # by outcome
    throttles: float = 0.0
    latency_s: dict[str, float] = field(default_factory=dict)  # p50, p95, p99
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cost_usd: float = 0.0
    backup_age_s: float | None = None  # the oldest partition's, when recovery is on
    epoch_age_s: float | None = None
    audits: dict[str, float] = field(default_factory=dict)  # packed answers compared alone, by result


SUMMED = (
    "reviewstream_records_read_total",
    "reviewstream_bedrock_throttles_total",
    "reviewstream_bedrock_cost_usd_total",
)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets: linear within a bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return 0.0
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = upper, count
    return lower


# Counters summed per value of one label: metric -> label.
BY_LABEL = {"reviewstream_bedrock_requests_total": "outcome", "reviewstream_packing_audits_total": "result"}


def parse(text: str) -> FlowMetrics:
    values: dict[str, float] = {}
    by_label: dict[str, dict[str, float]] = {name: {} for name in BY_LABEL}
    buckets: dict[float, float] = {}
    lag = in_flight = limit = pace = 0.0
    backup_age: float | None = None
    epoch_age: float | None = None
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels = s.name, s.labels
            if name == "reviewstream_shard_millis_behind_latest":
                lag = max(lag, s.value)
            elif name == "reviewstream_bedrock_in_flight":
                in_flight += s.value
            elif name == "reviewstream_bedrock_concurrency_limit":
                limit += s.value
            elif name == "reviewstream_bedrock_pace_rps":
                pace += s.value
            elif name in BY_LABEL:
                counts, key = by_label[name], labels.get(BY_LABEL[name], "?")
                counts[key] = counts.get(key, 0.0) + s.value
            elif name == "reviewstream_bedrock_latency_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif name == "reviewstream_bedrock_tokens_total":
                key = f"tokens_{labels.get('direction', '?')}"
                values[key] = values.get(key, 0.0) + s.value
            elif name == "reviewstream_recovery_backup_age_seconds":
                backup_age = max(backup_age or 0.0, s.value)
            elif name == "reviewstream_epoch_completed_age_seconds":
                epoch_age = max(epoch_age or 0.0, s.value)
            elif name in SUMMED:
                values[name] = values.get(name, 0.0) + s.value
    pairs = list(buckets.items())
    return FlowMetrics(
        records_read=values.get("reviewstream_records_read_total", 0.0),
        lag_ms=lag,
        in_flight=in_flight,
        window_limit=limit,
        pace_rps=pace,
        requests=by_label["reviewstream_bedrock_requests_total"],
        throttles=values.get("reviewstream_bedrock_throttles_total", 0.0),
        latency_s={f"p{int(q * 100)}": quantile(pairs, q) for q in (0.5, 0.95, 0.99)} if pairs else {},
        input_tokens=values.get("tokens_input", 0.0),
        output_tokens=values.get("tokens_output", 0.0),
        cost_usd=values.get("reviewstream_bedrock_cost_usd_total", 0.0),
        backup_age_s=backup_age,
        epoch_age_s=epoch_age,
        audits=by_label["reviewstream_packing_audits_total"],
    )


def fetch(urls: str, timeout: float = 2.0) -> FlowMetrics | None:
    """The metrics of the comma-separated endpoints taken together (the flow's, and the recovery supervisor's
    where it runs), or None while none answers (starting, finished, or metrics off)."""
    texts = []
    for url in filter(None, (u.strip() for u in urls.split(","))):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                texts.append(resp.read().decode())
        except (OSError, ValueError):
            continue
    try:
        return parse("\n".join(texts)) if texts else None
    except ValueError:
        return None
