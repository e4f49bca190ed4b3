"""A failed Bedrock call classified: congestion, bad request, bad configuration (docs/DESIGN.md section 3)."""

from __future__ import annotations

import pytest
from botocore.exceptions import NoCredentialsError

from dataflow.enrich.errors import classify
from tests.support.aws import client_error


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("ThrottlingException", 429), "throttled"),
        (client_error("ModelNotReadyException", 429), "throttled"),
        (client_error("ServiceUnavailableException", 503), "unavailable"),
        (client_error("InternalServerException", 500), "transient"),
        (client_error("ModelTimeoutException", 408), "transient"),
        (TimeoutError(), "timeout"),
        (client_error("ValidationException", 400, "Input is too long for requested model."), "request"),
        (client_error("ValidationException", 400, "The provided model identifier is invalid."), "config"),
        (
            client_error(
                "ValidationException",
                400,
                "Invocation of model ID anthropic.claude-haiku-4-5 with on-demand throughput isn't supported.",
            ),
            "config",
        ),
        (client_error("AccessDeniedException", 403), "config"),
        (client_error("ResourceNotFoundException", 404, "Model not found."), "config"),
        (client_error("UnrecognizedClientException", 403), "config"),
        (client_error("ExpiredTokenException", 403), "config"),
        (NoCredentialsError(), "config"),
    ],
)
def test_classification(exc: BaseException, kind: str) -> None:
    error = classify(exc, "my-model", "eu-west-1")
    assert error.kind == kind
    if kind == "config":
        assert "BEDROCK_MODEL_ID=my-model" in error.fix or "credentials" in error.fix
