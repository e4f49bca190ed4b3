"""The bastion's SigV4 proxy (infra/assets/sigv4_proxy.py) between a client and a recording fake domain."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.credentials import Credentials

from infra.assets import sigv4_proxy


class FakeDomain(BaseHTTPRequestHandler):
    """Answers like OpenSearch Dashboards would: a tenant cookie on GET, the document's length on HEAD."""

    seen: list[tuple[str, str, dict[str, str]]] = []

    def do_GET(self) -> None:
        FakeDomain.seen.append((self.command, self.path, dict(self.headers.items())))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "security_authentication=abc; Path=/_dashboards; HttpOnly")
        self.send_header("Set-Cookie", "security_tenant=global; Path=/_dashboards")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        FakeDomain.seen.append((self.command, self.path, dict(self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def proxy_port() -> Iterator[int]:
    FakeDomain.seen = []
    domain = ThreadingHTTPServer(("127.0.0.1", 0), FakeDomain)
    domain_port = domain.server_address[1]

    class Proxy(sigv4_proxy.Handler):
        endpoint = "vpc-reviewstream-dev-search-abc123.us-east-1.es.amazonaws.com"
        region = "us-east-1"

        def upstream(self) -> http.client.HTTPConnection:
            return http.client.HTTPConnection("127.0.0.1", domain_port, timeout=10)

        def credentials(self):
            return Credentials("AKIDEXAMPLE", "secret").get_frozen_credentials()

        def log_message(self, *args) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (domain, proxy)]
    for t in threads:
        t.start()
    yield proxy.server_address[1]
    for server in (proxy, domain):
        server.shutdown()
        server.server_close()


def request(port: int, method: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_cookies_reach_the_domain_unsigned_and_come_back(proxy_port: int) -> None:
    cookie = "security_authentication=abc; security_tenant=global"
    response = request(proxy_port, "GET", "/_dashboards/api/status", {"Cookie": cookie})
    assert response.status == 200
    ((method, path, headers),) = FakeDomain.seen
    assert (method, path) == ("GET", "/_dashboards/api/status")
    assert headers.get("Cookie") == cookie  # the tenant choice survives
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/es/aws4_request" in headers["Authorization"]
    signed = headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "cookie" not in signed and "host" in signed
    assert headers["Host"] == "vpc-reviewstream-dev-search-abc123.us-east-1.es.amazonaws.com"
    assert sorted(response.headers.get_all("Set-Cookie")) == sorted(
        ["security_authentication=abc; Path=/_dashboards; HttpOnly", "security_tenant=global; Path=/_dashboards"]
    )


def test_head_keeps_the_upstream_content_length(proxy_port: int) -> None:
    response = request(proxy_port, "HEAD", "/processed_reviews", {})
    assert response.status == 200
    assert response.headers["Content-Length"] == "1234"
    ((method, _, headers),) = FakeDomain.seen
    assert method == "HEAD" and "Authorization" in headers
