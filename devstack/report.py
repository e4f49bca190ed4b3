"""What the pipeline produced, read back from OpenSearch: a text summary and a self-contained HTML page.

Used by the demo and by `python -m devstack report` against a running stack (or any OpenSearch: the
report reads only the two indices). The HTML page is the live page's rendering (`devstack.live.page`), as a
snapshot with this text on top.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch, helpers

from dataflow.enrich.pricing import cost_usd, price_per_mtok
from devstack.cli import command
from devstack.live import page
from devstack.live.state import look

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
    for doc in _scan(client, dlq_index):
        report.dead_by_reason[(str(doc.get("stage", "?")), str(doc.get("error_type", "?")))] += 1
    return report


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
    client = OpenSearch(hosts=[url], timeout=30)
    report = build_report(client, args.index, args.dlq_index)
    print(report.text())
    args.html.parent.mkdir(parents=True, exist_ok=True)
    state = look(client, args.index, args.dlq_index, metrics=None)
    args.html.write_text(page.page(state, "reviewstream report", refresh_ms=None, text=report.text()))
    print(f"html report          {args.html}")
    return 0
