"""The live page in a real browser (Debian's Chromium, driven by Playwright) while a small pipeline runs: the counts
rise to what OpenSearch holds, a dead letter shows under its reason, the charts render, nothing errs in the console.
A screenshot is kept as out/live-page.png."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import boto3
import pytest

from devstack.live.server import LiveServer
from devstack.processes import free_port
from tests.plugins.stack import ROOT, Pipeline

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# .ci/run installs the browser and sets REVIEWSTREAM_BROWSER_TESTS=1: there a missing browser fails, not skips.
REQUIRED = os.environ.get("REVIEWSTREAM_BROWSER_TESTS") == "1"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not REQUIRED and not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
    ),
]
REVIEWS = 60


def tile(page, test_id: str) -> str:
    return page.locator(f'[data-testid="{test_id}"] .v').inner_text()


def test_the_live_page_follows_a_run(pipeline: Pipeline, tmp_path: Path) -> None:
    from playwright import sync_api

    # A model slow enough that the page sees the run in progress: ~60 requests at 150 ms, 2 at a time.
    pipeline.bedrock_config(latency_ms=150)
    metrics_port = free_port()
    env = {"METRICS_PORT": str(metrics_port), "BEDROCK_MAX_CONCURRENCY": "2", "BEDROCK_REVIEWS_PER_REQUEST": "1"}
    pipeline.produce(REVIEWS)
    kinesis = boto3.client("kinesis", endpoint_url=pipeline.env["AWS_ENDPOINT_URL_KINESIS"], region_name="us-east-1")
    kinesis.put_record(StreamName=pipeline.env["KINESIS_STREAM_NAME"], Data=b"{not json", PartitionKey="bad")
    errors: list[str] = []
    seen: list[int] = []
    live = LiveServer(
        pipeline.env["OPENSEARCH_URL"],
        f"http://127.0.0.1:{metrics_port}/metrics",
        pipeline.env["OPENSEARCH_INDEX"],
        pipeline.env["OPENSEARCH_DLQ_INDEX"],
        every_s=0.5,
    )
    flow = pipeline.start_flow("-w", "2", log=tmp_path / "flow.log", extra_env=env)
    with live, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(live.url)
            deadline = time.monotonic() + 180
            while flow.poll() is None and time.monotonic() < deadline:
                seen.append(int(tile(page, "indexed").replace(",", "")))
                page.wait_for_timeout(300)
            assert flow.poll() == 0, (tmp_path / "flow.log").read_text()[-3000:]
            final = pipeline.count()
            dead = pipeline.count("OPENSEARCH_DLQ_INDEX")
            assert final == REVIEWS and dead == 1
            page.wait_for_function(
                "([n, d]) => document.querySelector('[data-testid=indexed] .v').innerText.replace(',', '') == n"
                " && document.querySelector('[data-testid=dead] .v').innerText == d",
                arg=[str(final), str(dead)],
                timeout=15000,
            )
            reasons = page.locator('[data-testid="dead-reason"]').all_inner_texts()
            assert len(reasons) == 1 and reasons[0].split("\t")[0] == "parse", reasons
            charts = page.locator("svg.chart")
            assert charts.count() >= 3  # sentiment by review date, by arrival, throughput (lag once it is read)
            assert page.locator("svg.chart rect").count() > 0 and page.locator("svg.chart polyline").count() >= 1
            assert page.locator("svg.chart text").count() > 10  # axes, ticks and legends
            (ROOT / "out").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "out" / "live-page.png"), full_page=True)
        finally:
            browser.close()
            if flow.poll() is None:
                flow.kill()
    rising = [n for n in seen if 0 < n < REVIEWS]
    assert rising, f"the page never showed the run in progress: {seen}"
    assert seen == sorted(seen), f"the indexed count went down: {seen}"
    assert not errors, errors
