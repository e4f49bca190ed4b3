"""SigV4-signing HTTP proxy run by the bastion: 127.0.0.1:PORT -> https://<OpenSearch domain>.

The domain admits only IAM-signed requests (fine-grained access control with an IAM master user and a
resource policy naming IAM roles), which a browser or plain curl cannot make. Through an SSM port-forward
to this proxy, Dashboards and the saved-objects import work with the bastion role's identity.
Uses only the standard library and botocore (the `python3-botocore` package of Amazon Linux 2023).
"""

from __future__ import annotations

import http.client
import os
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.session import Session

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
}
# Forwarded but left out of the signature (browsers and intermediaries may change them); the cookies carry
# the Dashboards session and tenant choice.
UNSIGNED = {"accept-encoding", "user-agent", "referer", "origin", "cookie"}


def signed_headers(
    method: str, endpoint: str, path: str, body: bytes, headers: dict[str, str], region: str, credentials
) -> dict[str, str]:
    """The headers to send upstream, with SigV4 (service `es`) over the ones kept."""
    kept = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP | UNSIGNED}
    kept["Host"] = endpoint
    request = AWSRequest(method=method, url=f"https://{endpoint}{path}", data=body, headers=kept)
    SigV4Auth(credentials, "es", region).add_auth(request)
    return dict(request.headers.items())


class Handler(BaseHTTPRequestHandler):
    endpoint = os.environ.get("OPENSEARCH_ENDPOINT", "")
    region = os.environ.get("AWS_REGION", "us-east-1")
    session = Session()
    context = ssl.create_default_context()

    def upstream(self) -> http.client.HTTPConnection:
        return http.client.HTTPSConnection(self.endpoint, 443, context=self.context, timeout=60)

    def credentials(self):
        return self.session.get_credentials().get_frozen_credentials()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        creds = self.credentials()
        headers = signed_headers(
            self.command, self.endpoint, self.path, body, dict(self.headers.items()), self.region, creds
        )
        headers.update((k, v) for k, v in self.headers.items() if k.lower() in UNSIGNED)
        upstream = self.upstream()
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            if self.command == "HEAD":  # no body, but the length of the one a GET would return
                if response.getheader("Content-Length") is not None:
                    self.send_header("Content-Length", response.getheader("Content-Length"))
            else:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward


def main() -> None:
    port = int(os.environ.get("PROXY_PORT", "9200"))
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
