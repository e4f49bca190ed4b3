"""How a failed Bedrock call is handled: classification of errors into kinds.

`kind` decides the answer: throttled (the quota: pace, shrink, retry), transient (5xx, network: retry),
timeout (congestion: retry), fatal (the request or the review: dead-letter after the attempt).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceQuotaExceededException",
        "ModelNotReadyException",
        "ProvisionedThroughputExceededException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalServerException",
        "ServiceUnavailableException",
        "ModelTimeoutException",
        "ModelErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass(frozen=True)
class CallError:
    """How a failed call should be handled: `kind` is throttled | transient | timeout | fatal."""

    kind: str
    error_type: str
    message: str

    @property
    def retryable(self) -> bool:
        return self.kind != "fatal"


def classify(exc: BaseException) -> CallError:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return CallError("timeout", "Timeout", "request exceeded BEDROCK_TIMEOUT_S")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if code in THROTTLE_CODES or status == 429:
            return CallError("throttled", code, message)
        if code in TRANSIENT_CODES or status >= 500 or status == 408:
            return CallError("transient", code, message)
        return CallError("fatal", code, message)
    if isinstance(exc, BotoCoreError | OSError):
        return CallError("transient", type(exc).__name__, str(exc))
    return CallError("fatal", type(exc).__name__, str(exc) or repr(exc))
