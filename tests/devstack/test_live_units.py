"""The live page's parts: the metrics it reads (by the flow's own metric names), the quantiles, the charts, the page."""

from __future__ import annotations

from prometheus_client import generate_latest

from dataflow import metrics
from devstack.live import charts, flow_metrics, page
from devstack.live.state import History, LiveState


def test_the_page_reads_the_flow_s_own_metric_names() -> None:
    """Parsed from what dataflow.metrics actually exposes: a renamed metric fails here, not on someone's laptop."""
    before = flow_metrics.parse(generate_latest().decode())
    metrics.RECORDS_READ.labels("shardId-000000000000").inc(3)
    metrics.SHARD_LAG_MS.labels("shardId-000000000000").set(1500)
    metrics.BEDROCK_IN_FLIGHT.labels("w9").set(2)
    metrics.BEDROCK_LIMIT.labels("w9").set(8)
    metrics.BEDROCK_PACE.labels("w9").set(1.5)
    metrics.BEDROCK_REQUESTS.labels("ok").inc(4)
    metrics.BEDROCK_THROTTLES.inc(1)
    metrics.BEDROCK_LATENCY.observe(0.4)
    metrics.BEDROCK_TOKENS.labels("input").inc(100)
    metrics.BEDROCK_TOKENS.labels("output").inc(20)
    metrics.BEDROCK_COST.inc(0.01)
    metrics.PACKING_AUDITS.labels("agree").inc(9)
    metrics.PACKING_AUDITS.labels("disagree").inc(1)
    after = flow_metrics.parse(generate_latest().decode())
    assert after.records_read - before.records_read == 3
    assert after.lag_ms >= 1500
    assert after.in_flight - before.in_flight == 2 and after.window_limit - before.window_limit == 8
    assert after.pace_rps - before.pace_rps == 1.5
    assert after.requests["ok"] - before.requests.get("ok", 0) == 4
    assert after.throttles - before.throttles == 1
    assert after.input_tokens - before.input_tokens == 100 and after.output_tokens - before.output_tokens == 20
    assert after.cost_usd - before.cost_usd > 0.0099
    assert set(after.latency_s) == {"p50", "p95", "p99"}
    assert after.audits["agree"] - before.audits.get("agree", 0) == 9
    assert after.audits["disagree"] - before.audits.get("disagree", 0) == 1


def test_the_packing_audit_shows_only_when_packs_were_compared() -> None:
    m = flow_metrics.FlowMetrics(audits={"agree": 9.0, "disagree": 3.0, "failed": 1.0})
    html = page.tiles(LiveState(at=0, metrics=m))
    assert 'data-testid="packing-audit"' in html and "9 of 12 agree (75%)" in html
    assert "packing-audit" not in page.tiles(LiveState(at=0, metrics=flow_metrics.FlowMetrics(audits={"failed": 2})))


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 0.0), (0.5, 50.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert flow_metrics.quantile(buckets, 0.5) == 0.5
    assert abs(flow_metrics.quantile(buckets, 0.25) - 0.3) < 1e-9
    assert flow_metrics.quantile([], 0.5) == 0.0
    assert flow_metrics.quantile([(1.0, 0.0), (float("inf"), 5.0)], 0.99) == 1.0  # in +Inf: the last finite bound


def test_backup_and_epoch_ages_show_only_when_exposed() -> None:
    text = (
        "# TYPE reviewstream_recovery_backup_age_seconds gauge\n"
        'reviewstream_recovery_backup_age_seconds{partition="0"} 12.0\n'
        'reviewstream_recovery_backup_age_seconds{partition="1"} 40.0\n'
        "# TYPE reviewstream_epoch_completed_age_seconds gauge\nreviewstream_epoch_completed_age_seconds 3.0\n"
    )
    m = flow_metrics.parse(text)
    assert m.backup_age_s == 40.0 and m.epoch_age_s == 3.0
    html = page.tiles(LiveState(at=0, metrics=m))
    assert 'data-testid="backup-age"' in html and "40 s" in html and 'data-testid="epoch-age"' in html
    assert 'data-testid="backup-age"' not in page.tiles(LiveState(at=0, metrics=flow_metrics.FlowMetrics()))


def test_charts_carry_axes_units_and_legends() -> None:
    bars = charts.sentiment_bars([("2026-01", {"positive": 3, "negative": 1}), ("2026-02", {"positive": 2})], "S", "x")
    assert bars.count("<rect") >= 5 and "reviews" in bars and "positive" in bars and "negative" in bars
    line = charts.line([(0.0, 1.0), (2.0, 3.5)], "Throughput", "seconds watched", "reviews/s", "done")
    assert "<polyline" in line and "reviews/s" in line and "seconds watched" in line
    assert "no reviews" in charts.sentiment_bars([], "S", "x") and "waiting" in charts.line([], "T", "x", "y", "n")
    assert charts._nice(7) == 10 and charts._nice(0.3) == 0.5 and charts._nice(120) == 200


def test_throughput_is_a_rate_over_the_recent_looks() -> None:
    history = History(window_s=20)
    first, second = LiveState(at=0, indexed=10), LiveState(at=0, indexed=30, dead=2)
    history.add(first, now=100.0)
    history.add(second, now=104.0)
    assert first.rate_per_s is None and second.rate_per_s == 22 / 4
    assert second.throughput and second.throughput[-1][1] == 22 / 4


def test_the_snapshot_page_has_no_script_and_the_live_one_refreshes() -> None:
    state = LiveState(at=0, indexed=1, latest=[{"review_id": "r<1>", "summary": "<b>x</b>", "sentiment": "positive"}])
    snapshot = page.page(state, "t", refresh_ms=None, text="report")
    assert "<script>" not in snapshot and "<pre>report</pre>" in snapshot and "&lt;b&gt;x&lt;/b&gt;" in snapshot
    live = page.page(state, "t", refresh_ms=1500)
    assert "setInterval(refresh, 1500)" in live and "http" not in live.split("<script>")[1]  # nothing fetched


def test_the_flow_s_and_the_supervisor_s_endpoints_are_read_together() -> None:
    """Locally the backup age is on the recovery supervisor's port, beside the flow's: the page reads both."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = {
        "/flow": b'# TYPE reviewstream_records_read_total counter\nreviewstream_records_read_total{shard="s"} 7.0\n',
        "/sup": b"# TYPE reviewstream_recovery_backup_age_seconds gauge\n"
        b'reviewstream_recovery_backup_age_seconds{partition="0"} 5.0\n',
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        both = flow_metrics.fetch(f"{base}/flow,{base}/sup,http://127.0.0.1:1/none")  # one endpoint down
        assert both is not None and both.records_read == 7.0 and both.backup_age_s == 5.0
        assert flow_metrics.fetch("http://127.0.0.1:1/none") is None and flow_metrics.fetch("") is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
