"""How a failed Bedrock call is handled: every error is congestion, a bad request, or a bad configuration.

The three kinds of failure get three answers (docs/DESIGN.md section 3):

- congestion (`throttled`, `unavailable`, `timeout`) is the system's doing: shrink the window, pace, retry
  with a large budget; it never dead-letters a review by itself;
- `transient` (500s, dropped connections) is retried with the ordinary attempt budget;
- `request` (a ValidationException about this request, e.g. input too long for the model) is the
  reviews' doing: a packed request falls back to one review per request, and only a review that fails
  alone is dead-lettered;
- `config` (access denied, unknown model, bad or expired credentials) is ours: the reviews are kept, and a
  few in a row halt the flow with one line naming the setting to fix, so the stream is not turned into
  dead letters and the reviews are read again after the restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceQuotaExceededException",
        "ModelNotReadyException",
        "ProvisionedThroughputExceededException",
    }
)
UNAVAILABLE_CODES = frozenset({"ServiceUnavailableException"})
TRANSIENT_CODES = frozenset(
    {
        "InternalServerException",
        "ModelTimeoutException",
        "ModelErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidSignatureException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
# A ValidationException is about the model id, not the review, when its message says so.
MODEL_ID_MESSAGES = ("model identifier", "on-demand throughput", "inference profile", "model id")


class ErrorKind(StrEnum):
    """What a failed call was; a str too, so it labels metrics as it is."""

    THROTTLED = "throttled"  # congestion: refused for the quota
    UNAVAILABLE = "unavailable"  # congestion: 503, the service is overloaded
    TIMEOUT = "timeout"  # congestion until proven otherwise (retry_policy.py)
    TRANSIENT = "transient"  # 500s, dropped connections
    REQUEST = "request"  # a bad request: the reviews' doing
    CONFIG = "config"  # a bad configuration: ours
    INVALID = "invalid"  # the answer did not validate


CONGESTION_KINDS = frozenset({ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT})


@dataclass(frozen=True)
class CallError:
    """A failed call, by kind. `fix` says, for a configuration error, which setting or permission to fix.

    `kind` may be given as its string value; anything else is refused here, so a typo cannot pass silently."""

    kind: ErrorKind
    error_type: str
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ErrorKind(self.kind))

    @property
    def congestion(self) -> bool:
        return self.kind in CONGESTION_KINDS


def config_fix(code: str, message: str, model_id: str, region: str) -> str:
    """One line naming what to fix for a configuration error."""
    if code in CREDENTIAL_CODES or code in ("NoCredentialsError", "PartialCredentialsError"):
        return (
            f"the AWS credentials are missing, invalid or expired ({code}): give the dataflow valid credentials "
            "(AWS_PROFILE / AWS_ACCESS_KEY_ID, or the pod's IRSA role)"
        )
    if code == "AccessDeniedException":
        return (
            f"access denied to BEDROCK_MODEL_ID={model_id} in AWS_REGION={region}: grant bedrock:InvokeModel on "
            f"the model (and the inference profile) and make sure the account may use the model ({message})"
        )
    return (
        f"BEDROCK_MODEL_ID={model_id} is not usable in AWS_REGION={region} ({code}: {message}); "
        "set BEDROCK_MODEL_ID to a model or inference profile id available there"
    )


def classify(exc: BaseException, model_id: str = "", region: str = "") -> CallError:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return CallError(ErrorKind.TIMEOUT, "Timeout", "request exceeded BEDROCK_TIMEOUT_S")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        code = type(exc).__name__
        return CallError(ErrorKind.CONFIG, code, str(exc), config_fix(code, str(exc), model_id, region))
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if code in THROTTLE_CODES or status == 429:
            return CallError(ErrorKind.THROTTLED, code, message)
        if code in UNAVAILABLE_CODES or status == 503:
            return CallError(ErrorKind.UNAVAILABLE, code, message)
        if code in TRANSIENT_CODES or status >= 500 or status == 408:
            return CallError(ErrorKind.TRANSIENT, code, message)
        if (
            code in CREDENTIAL_CODES
            or code in ("AccessDeniedException", "ResourceNotFoundException")
            or (code == "ValidationException" and any(m in message.lower() for m in MODEL_ID_MESSAGES))
        ):
            return CallError(ErrorKind.CONFIG, code, message, config_fix(code, message, model_id, region))
        return CallError(ErrorKind.REQUEST, code, message)
    if isinstance(exc, BotoCoreError | OSError):
        return CallError(ErrorKind.TRANSIENT, type(exc).__name__, str(exc))
    return CallError(ErrorKind.REQUEST, type(exc).__name__, str(exc) or repr(exc))
