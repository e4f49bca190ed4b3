"""What the pipeline produced, read back from OpenSearch: a text summary and a self-contained HTML page.

Used by the demo and by `python -m devstack report` against a running stack (or any OpenSearch: the
report reads only the two indices).
"""

from __future__ import annotations

import argparse
import html
import os
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

from dataflow.enrich.pricing import cost_usd, price_per_mtok
from devstack.cli import command

PROCESSED_FIELDS = [
    "review_id",
    "date_time",
    "summary",
    "sentiment",
    "label",
    "model_id",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "attempts",
    "processed_at",
    "arrived_at",
]


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Report:
    reviews_in: int | None
    indexed: int
    dead_by_reason: Counter[tuple[str, str]]
    sentiments: Counter[str]
    labelled: int
    correct: int
    latency_ms: list[float]
    end_to_end_s: list[float]
    input_tokens: int
    output_tokens: int
    model_ids: Counter[str]
    elapsed_s: float | None
    timeline: list[tuple[str, str]] = field(default_factory=list)  # (date_time, sentiment)
    latest: list[dict[str, Any]] = field(default_factory=list)
    dead_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dead(self) -> int:
        return sum(self.dead_by_reason.values())

    @property
    def accounted(self) -> int:
        return self.indexed + self.dead

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def cost_usd(self) -> float:
        model = self.model_ids.most_common(1)[0][0] if self.model_ids else ""
        return cost_usd(self.input_tokens, self.output_tokens, price_per_mtok(model))

    @property
    def throughput(self) -> float | None:
        return self.accounted / self.elapsed_s if self.elapsed_s else None

    def text(self) -> str:
        model = self.model_ids.most_common(1)[0][0] if self.model_ids else "-"
        price_in, price_out = price_per_mtok(model)
        lines = ["reviewstream report", "==================="]
        reviews_in = "?" if self.reviews_in is None else str(self.reviews_in)
        lines.append(f"reviews in          {reviews_in}")
        lines.append(f"indexed             {self.indexed}")
        lines.append(f"dead-lettered       {self.dead}")
        for (stage, reason), count in sorted(self.dead_by_reason.items()):
            lines.append(f"  {stage:<7} {reason:<38} {count}")
        if self.reviews_in is not None:
            verdict = "OK" if self.accounted == self.reviews_in else "MISMATCH"
            lines.append(f"accounted for       {self.accounted} of {self.reviews_in} ({verdict})")
        lines.append("sentiment           " + ", ".join(f"{k} {v}" for k, v in sorted(self.sentiments.items())) or "-")
        if self.accuracy is not None:
            lines.append(f"accuracy vs labels  {self.accuracy:.1%} ({self.correct}/{self.labelled})")
        if self.throughput is not None:
            lines.append(f"throughput          {self.throughput:.1f} reviews/s over {self.elapsed_s:.1f} s")
        lines.append(
            f"model latency       p50 {_percentile(self.latency_ms, 50):.0f} ms, "
            f"p95 {_percentile(self.latency_ms, 95):.0f} ms"
        )
        if self.end_to_end_s:
            lines.append(
                f"arrival to indexed  p50 {_percentile(self.end_to_end_s, 50):.2f} s, "
                f"p95 {_percentile(self.end_to_end_s, 95):.2f} s"
            )
        per_review = (self.input_tokens + self.output_tokens) / self.indexed if self.indexed else 0
        lines.append(
            f"tokens              {self.input_tokens} in, {self.output_tokens} out ({per_review:.0f} per review)"
        )
        per_thousand = self.cost_usd / self.indexed * 1000 if self.indexed else 0.0
        lines.append(
            f"estimated cost      ${self.cost_usd:.4f} at {model} prices "
            f"(${price_in}/${price_out} per M tokens; ${per_thousand:.3f} per 1,000 reviews)"
        )
        return "\n".join(lines)


def _scan(client: OpenSearch, index: str, fields: list[str] | None = None) -> Iterator[dict[str, Any]]:
    if not client.indices.exists(index=index):
        return iter(())
    query: dict[str, Any] = {"query": {"match_all": {}}}
    if fields:
        query["_source"] = fields
    return (hit["_source"] for hit in helpers.scan(client, index=index, query=query, size=1000))


def build_report(
    client: OpenSearch,
    index: str = "processed_reviews",
    dlq_index: str = "processed_reviews_dlq",
    reviews_in: int | None = None,
    elapsed_s: float | None = None,
    latest: int = 20,
) -> Report:
    for name in (index, dlq_index):
        if client.indices.exists(index=name):
            client.indices.refresh(index=name)
    report = Report(reviews_in, 0, Counter(), Counter(), 0, 0, [], [], 0, 0, Counter(), elapsed_s)
    docs = list(_scan(client, index, PROCESSED_FIELDS))
    for doc in docs:
        report.indexed += 1
        sentiment = str(doc.get("sentiment", "?"))
        report.sentiments[sentiment] += 1
        if doc.get("label"):
            report.labelled += 1
            report.correct += doc["label"] == sentiment
        report.latency_ms.append(float(doc.get("latency_ms") or 0))
        report.input_tokens += int(doc.get("input_tokens") or 0)
        report.output_tokens += int(doc.get("output_tokens") or 0)
        report.model_ids[str(doc.get("model_id", ""))] += 1
        arrived, processed = _parse_time(doc.get("arrived_at")), _parse_time(doc.get("processed_at"))
        if arrived and processed:
            report.end_to_end_s.append((processed - arrived).total_seconds())
        if doc.get("date_time"):
            report.timeline.append((doc["date_time"], sentiment))
    docs.sort(key=lambda d: d.get("processed_at") or "", reverse=True)
    report.latest = docs[:latest]
    for doc in _scan(client, dlq_index):
        report.dead_by_reason[(str(doc.get("stage", "?")), str(doc.get("error_type", "?")))] += 1
        if len(report.dead_examples) < latest:
            report.dead_examples.append(doc)
    return report


def _svg_timeline(timeline: list[tuple[str, str]], width: int = 760, height: int = 220) -> str:
    """Stacked bars of positive/negative reviews per period of `date_time` (month, or day for short spans)."""
    if not timeline:
        return "<p>No reviews yet.</p>"
    stamps = sorted(t for t, _ in timeline)
    span_days = ((_parse_time(stamps[-1]) or datetime.min) - (_parse_time(stamps[0]) or datetime.min)).days
    cut = 10 if span_days <= 62 else 7  # YYYY-MM-DD or YYYY-MM
    buckets: dict[str, Counter[str]] = {}
    for stamp, sentiment in timeline:
        buckets.setdefault(stamp[:cut], Counter())[sentiment] += 1
    keys = sorted(buckets)
    top = max(sum(c.values()) for c in buckets.values())
    bar_w = max(2.0, (width - 60) / len(keys))
    parts = [f'<svg viewBox="0 0 {width} {height + 40}" width="100%" role="img" aria-label="sentiment over time">']
    for i, key in enumerate(keys):
        x = 50 + i * bar_w
        y = float(height)
        for sentiment, colour in (("negative", "#d9534f"), ("positive", "#5cb85c")):
            h = buckets[key][sentiment] / top * (height - 10)
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.85:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{html.escape(key)}: {buckets[key][sentiment]} {sentiment}</title></rect>"
            )
        if len(keys) <= 24 or i % max(1, len(keys) // 12) == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height + 15}" font-size="9" transform="rotate(30 {x:.1f},{height + 15})">'
                f"{html.escape(key)}</text>"
            )
    parts.append(f'<text x="5" y="15" font-size="10">{top}</text><text x="5" y="{height}" font-size="10">0</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report, title: str = "reviewstream report") -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(str(d.get('processed_at', '')))}</td><td>{esc(str(d.get('review_id', '')))}</td>"
        f"<td class='{esc(str(d.get('sentiment', '')))}'>{esc(str(d.get('sentiment', '')))}</td>"
        f"<td>{esc(str(d.get('label', '')))}</td><td>{esc(str(d.get('summary', '')))}</td></tr>"
        for d in report.latest
    )
    dead_rows = "".join(
        f"<tr><td>{esc(stage)}</td><td>{esc(reason)}</td><td>{count}</td></tr>"
        for (stage, reason), count in sorted(report.dead_by_reason.items())
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; }}
th {{ background: #f4f4f4; text-align: left; }} .positive {{ color: #2e7d32; }} .negative {{ color: #c62828; }}
pre {{ background: #f8f8f8; padding: 1rem; }}
</style></head><body>
<h1>{esc(title)}</h1>
<pre>{esc(report.text())}</pre>
<h2>Sentiment over time</h2>
<p>Reviews per period of their <code>date_time</code>: <span class="positive">positive</span> and
<span class="negative">negative</span>.</p>
{_svg_timeline(report.timeline)}
<h2>Latest summaries</h2>
<table><tr><th>processed at</th><th>review</th><th>sentiment</th><th>label</th><th>summary</th></tr>{rows}</table>
<h2>Dead letters by reason</h2>
<table><tr><th>stage</th><th>error type</th><th>count</th></tr>{dead_rows or "<tr><td colspan=3>none</td></tr>"}</table>
</body></html>
"""


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--opensearch-url", default=None, help="default: OPENSEARCH_URL, else the running devstack")
    p.add_argument("--index", default=os.environ.get("OPENSEARCH_INDEX", "processed_reviews"))
    p.add_argument("--dlq-index", default=os.environ.get("OPENSEARCH_DLQ_INDEX", "processed_reviews_dlq"))
    p.add_argument("--html", type=Path, default=Path("out/report.html"), help="where to write the HTML page")
    p.add_argument("--dir", type=Path, default=Path(".devstack"), help="the devstack state directory")


def _opensearch_url(args: argparse.Namespace) -> str | None:
    if args.opensearch_url:
        return str(args.opensearch_url)
    env_file = args.dir / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            if key.strip() == "OPENSEARCH_URL":
                return value.strip().strip("'\"")
    return os.environ.get("OPENSEARCH_URL")


@command("report", "print the pipeline's report and write it as HTML", _arguments)
def report_command(args: argparse.Namespace) -> int:
    import sys

    url = _opensearch_url(args)
    if not url:
        print(
            "devstack report: no OpenSearch: start the stack (python -m devstack up) or set OPENSEARCH_URL",
            file=sys.stderr,
        )
        return 1
    report = build_report(OpenSearch(hosts=[url], timeout=30), args.index, args.dlq_index)
    print(report.text())
    args.html.parent.mkdir(parents=True, exist_ok=True)
    args.html.write_text(render_html(report))
    print(f"html report          {args.html}")
    return 0
