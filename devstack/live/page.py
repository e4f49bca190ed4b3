"""The page: tiles of numbers, the charts and the tables; live (refreshing itself) or as an end-of-run snapshot."""

from __future__ import annotations

import html

from devstack.live import charts
from devstack.live.state import LiveState

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; max-width: 1500px; }
.tiles { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .8rem; min-width: 9rem; }
.tile .v { font-size: 1.4rem; font-weight: 600; } .tile .k { font-size: .8rem; color: #555; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid #ccc; padding: .25rem .5rem; }
th { background: #f4f4f4; text-align: left; } .positive { color: #2e7d32; } .negative { color: #c62828; }
pre { background: #f8f8f8; padding: 1rem; } .empty { color: #777; } #stamp { color: #777; font-size: .85rem; }
"""

# The page's own refresh: fetch the fragment and swap it in; no library, nothing from elsewhere.
SCRIPT = """
async function refresh() {
  try {
    const r = await fetch('fragment', {cache: 'no-store'});
    if (r.ok) { document.getElementById('live').innerHTML = await r.text(); }
  } catch (e) { document.getElementById('stamp').textContent = 'the local stack does not answer'; }
}
setInterval(refresh, %d);
"""


def _tile(key: str, value: str, test_id: str) -> str:
    value, key = html.escape(value), html.escape(key)
    return f'<div class="tile" data-testid="{test_id}"><div class="v">{value}</div><div class="k">{key}</div></div>'


def _number(value: float | None, fmt: str = "{:,.0f}", unit: str = "") -> str:
    return "-" if value is None else fmt.format(value) + unit


def tiles(state: LiveState) -> str:
    m = state.metrics
    requests = sum(m.requests.values()) if m else None
    throttled = (m.throttles / requests if requests else 0.0) if m else None
    latency = m.latency_s if m else {}
    items = [
        ("reviews in (read from Kinesis)", _number(m.records_read if m else None), "reviews-in"),
        ("indexed", _number(state.indexed), "indexed"),
        ("dead-lettered", _number(state.dead), "dead"),
        ("throughput", _number(state.rate_per_s, "{:.1f}", " reviews/s"), "throughput"),
        ("lag behind the stream", _number(m.lag_ms / 1000 if m else None, "{:.1f}", " s"), "lag"),
        ("Bedrock in flight / window", f"{m.in_flight:.0f} / {m.window_limit:.0f}" if m else "-", "window"),
        ("Bedrock pace (quota)", _number(m.pace_rps * 60 if m and m.pace_rps else None, "{:.0f}", " req/min"), "pace"),
        ("Bedrock throttled", _number(None if throttled is None else throttled * 100, "{:.1f}", " %"), "throttled"),
        (
            "model latency p50 / p95 / p99",
            " / ".join(f"{latency[q]:.2f}" for q in ("p50", "p95", "p99")) + " s" if latency else "-",
            "latency",
        ),
        ("tokens in / out", f"{m.input_tokens:,.0f} / {m.output_tokens:,.0f}" if m else "-", "tokens"),
        ("estimated cost so far", _number(m.cost_usd if m else None, "${:.4f}"), "cost"),
    ]
    if m and m.backup_age_s is not None:
        items.append(("recovery backup age", _number(m.backup_age_s, "{:.0f}", " s"), "backup-age"))
    if m and (compared := m.audits.get("agree", 0.0) + m.audits.get("disagree", 0.0)):
        agreed = m.audits.get("agree", 0.0)
        value = f"{agreed:.0f} of {compared:.0f} agree ({agreed / compared:.0%})"
        items.append(("packed answers vs. alone (audit)", value, "packing-audit"))
    if m and m.epoch_age_s is not None:
        items.append(("last completed epoch", _number(m.epoch_age_s, "{:.0f}", " s ago"), "epoch-age"))
    return '<div class="tiles">' + "".join(_tile(*item) for item in items) + "</div>"


def tables(state: LiveState) -> str:
    esc = html.escape
    dead = "".join(
        f'<tr data-testid="dead-reason"><td>{esc(stage)}</td><td>{esc(kind)}</td><td>{count}</td></tr>'
        for stage, kind, count in state.dead_by_reason
    )
    latest = "".join(
        f"<tr><td>{esc(str(d.get('processed_at', '')))}</td><td>{esc(str(d.get('review_id', '')))}</td>"
        f"<td class='{esc(str(d.get('sentiment', '')))}'>{esc(str(d.get('sentiment', '')))}</td>"
        f"<td>{esc(str(d.get('label') or ''))}</td><td>{esc(str(d.get('summary', '')))}</td></tr>"
        for d in state.latest
    )
    return (
        "<h2>Dead letters by reason</h2><table><tr><th>stage</th><th>reason</th><th>count</th></tr>"
        + (dead or "<tr><td colspan=3>none</td></tr>")
        + "</table><h2>Latest summaries</h2><table><tr><th>processed at</th><th>review</th><th>sentiment</th>"
        + "<th>label</th><th>summary</th></tr>"
        + latest
        + "</table>"
    )


def fragment(state: LiveState) -> str:
    """Everything that changes: what the page swaps in on each refresh."""
    return (
        tiles(state)
        + '<div class="grid">'
        + charts.sentiment_bars(state.by_review_date, "Sentiment by review date", "review date (date_time)")
        + charts.sentiment_bars(state.by_arrival, "Sentiment by arrival", "processed at (UTC)")
        + charts.line(state.throughput, "Throughput", "seconds watched", "reviews/s", "indexed + dead-lettered")
        + charts.line(state.lag, "Lag behind the stream", "seconds watched", "ms behind latest", "largest shard")
        + "</div>"
        + tables(state)
    )


def page(state: LiveState, title: str, refresh_ms: int | None = 3000, text: str | None = None) -> str:
    """The whole page. `refresh_ms` None: a snapshot (out/report.html) with `text`, the run's report, on top."""
    esc = html.escape
    script = f"<script>{SCRIPT % refresh_ms}</script>" if refresh_ms else ""
    stamp = "updates every few seconds" if refresh_ms else "snapshot at the end of the run"
    report = f"<pre>{esc(text)}</pre>" if text else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<link rel="icon" href="data:,">'  # no favicon request, so no 404 in the console
        f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1><p id='stamp'>{stamp}</p>{report}"
        f'<div id="live">{fragment(state)}</div>{script}</body></html>'
    )
