"""The live page's server: a poller that looks at the pipeline every few seconds, and a loopback HTTP server.

    python -m devstack.live.server --opensearch-url URL [--metrics-url URL] [--port 0] [--ready-file F]

`/` is the page, `/fragment` what it swaps in on each refresh, `/state.json` the same look as data.
The demo runs it in-process (`LiveServer`); `python -m devstack up` runs it as a service of the stack.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from opensearchpy import OpenSearch

from devstack.live import flow_metrics, page
from devstack.live.state import History, LiveState, look

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class LiveServer:
    """Looks every `every_s` seconds; serves the newest look. `metrics_url` may be set once the flow is known."""

    def __init__(
        self,
        opensearch_url: str,
        metrics_url: str = "",
        index: str = "processed_reviews",
        dlq_index: str = "processed_reviews_dlq",
        title: str = "reviewstream, live",
        every_s: float = 2.0,
        port: int = 0,
    ) -> None:
        self.client = OpenSearch(hosts=[opensearch_url], timeout=5)
        self.metrics_url, self.index, self.dlq_index = metrics_url, index, dlq_index
        self.title, self.every_s = title, every_s
        self.history = History()
        self.state = LiveState(at=0.0)
        self._stop = threading.Event()
        self._http = ThreadingHTTPServer((LOOPBACK, port), self._handler())
        self._http.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._http.serve_forever, name="live-http", daemon=True),
            threading.Thread(target=self._poll, name="live-poll", daemon=True),
        ]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._http.server_address[1]}/"

    def look_now(self) -> LiveState:
        self.state = look(self.client, self.index, self.dlq_index, flow_metrics.fetch(self.metrics_url), self.history)
        return self.state

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.look_now()
            except Exception as err:  # a look that fails must not end the page; the next one may work
                log.warning("live.look_failed error=%s", err)
            self._stop.wait(self.every_s)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/":
                    body, kind = page.page(server.state, server.title, int(server.every_s * 1000)), "text/html"
                elif path == "/fragment":
                    body, kind = page.fragment(server.state), "text/html"
                elif path == "/state.json":
                    body, kind = orjson.dumps(server.state.as_json()).decode(), "application/json"
                else:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # one line per request would flood the demo
                pass

        return Handler

    def start(self) -> LiveServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._http.shutdown()
        self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.live.server", description=__doc__.split("\n")[0])
    parser.add_argument("--opensearch-url", required=True)
    parser.add_argument(
        "--metrics-url",
        default="http://127.0.0.1:9108/metrics,http://127.0.0.1:9109/metrics",
        help="the flow's /metrics, and the recovery supervisor's where it runs (comma-separated)",
    )
    parser.add_argument("--index", default=os.environ.get("OPENSEARCH_INDEX", "processed_reviews"))
    parser.add_argument("--dlq-index", default=os.environ.get("OPENSEARCH_DLQ_INDEX", "processed_reviews_dlq"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--every-s", type=float, default=2.0)
    parser.add_argument("--ready-file", type=Path, default=None, help="written with {'url': ...} once listening")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    live = LiveServer(args.opensearch_url, args.metrics_url, args.index, args.dlq_index, port=args.port)
    live.every_s = args.every_s
    live.start()
    if args.ready_file:
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": live.url.rstrip("/")}))
        os.replace(tmp, args.ready_file)
    sys.stderr.write(f"live.listening url={live.url}\n")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        live.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
