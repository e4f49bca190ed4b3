"""The Bedrock Converse caller: client construction and error classification.

The client is aiobotocore's `bedrock-runtime`; `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (read by botocore itself)
points it at the local Bedrock-compatible server, so there is one code path for AWS and local. botocore's
own retries are off: the enrichment step retries with its own backoff and feeds throttling into AIMD.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from dataflow.settings import Settings

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

# A factory returns an async context manager yielding an object with `async converse(**kwargs)`.
ClientFactory = Callable[[Settings], contextlib.AbstractAsyncContextManager[Any]]


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


def aiobotocore_client(settings: Settings) -> contextlib.AbstractAsyncContextManager[Any]:
    """The real `bedrock-runtime` client, sized for the concurrency window."""
    config = AioConfig(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=settings.bedrock_timeout_s + 5,
        max_pool_connections=settings.bedrock_max_concurrency,
    )
    return get_session().create_client("bedrock-runtime", region_name=settings.aws_region, config=config)
