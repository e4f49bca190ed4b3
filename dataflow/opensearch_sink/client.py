"""The OpenSearch client: OPENSEARCH_URL, SigV4-signed for Amazon OpenSearch Service when asked.

opensearch-py's own retries are off: the bulk writer retries by kind (errors.py), so a retry never hides
a halt and never re-sends documents already stored.
"""

from __future__ import annotations

from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth

from dataflow.opensearch_sink.errors import OpenSearchHalt
from dataflow.settings import Settings


def opensearch_client(settings: Settings) -> OpenSearch:
    """A client for OPENSEARCH_URL; SigV4-signed for Amazon OpenSearch Service when asked."""
    auth = None
    if settings.opensearch_auth == "sigv4":
        import boto3

        credentials = boto3.session.Session().get_credentials()
        if credentials is None:
            raise OpenSearchHalt(
                "OPENSEARCH_AUTH=sigv4 but no AWS credentials were found (set AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, a profile, or the pod's IRSA role)"
            )
        auth = Urllib3AWSV4SignerAuth(credentials, settings.aws_region, "es")
    return OpenSearch(
        hosts=[settings.opensearch_url],
        http_auth=auth,
        use_ssl=settings.opensearch_url.startswith("https://"),
        verify_certs=settings.opensearch_url.startswith("https://"),
        timeout=settings.opensearch_timeout_s,
        max_retries=0,
        retry_on_timeout=False,
        http_compress=settings.opensearch_auth == "sigv4",
    )
