"""Bedrock's modeled errors, serialised the restJson1 way so botocore raises the same exception classes.

botocore reads the error code from the `x-amzn-ErrorType` header (the part before `:`), falling back to
the body's `__type`/`code`; we send the header and the `message` body field that AWS sends.

Two families: the bedrock-runtime service's modeled errors (botocore has a class for each), and the errors
every AWS JSON service answers before the request reaches the service (bad or expired credentials): those
are not in bedrock-runtime's model, so botocore raises a plain ClientError carrying the code and status.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 400,  # as botocore's bedrock and bedrock-runtime models say
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

# Modeled by the control plane (`bedrock`) only: batch-inference job tagging.
CONTROL_ERROR_STATUS: dict[str, int] = {"TooManyTagsException": 400}

# Answered by AWS's front door (authentication), not by Bedrock itself.
AUTH_ERROR_STATUS: dict[str, int] = {
    "UnrecognizedClientException": 403,
    "ExpiredTokenException": 403,
    "InvalidSignatureException": 403,
}

DEFAULT_MESSAGES: dict[str, str] = {
    "ValidationException": "The request is invalid.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": "Could not resolve the foundation model from the provided model identifier.",
    "ConflictException": "The request conflicts with the current state of the resource.",
    "TooManyTagsException": "The request contains more tags than can be associated with a resource (200).",
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "ModelErrorException": "The model returned an error.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ModelNotReadyException": "The model is not ready to serve inference requests. Try again later.",
    "InternalServerException": "The server encountered an internal error while processing the request.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "ExpiredTokenException": "The security token included in the request is expired",
    "InvalidSignatureException": (
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
        "Access Key and signing method. Consult the service documentation for details."
    ),
}

TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."

_BEDROCK_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.coral.service/"


def error_status(code: str) -> int:
    """The HTTP status AWS answers `code` with; KeyError for a code we do not model."""
    return {**ERROR_STATUS, **CONTROL_ERROR_STATUS, **AUTH_ERROR_STATUS}[code]


@dataclass
class BedrockError(Exception):
    """An error the server answers with; `code` is one of ERROR_STATUS's or AUTH_ERROR_STATUS's keys."""

    code: str
    message: str = ""

    def __post_init__(self) -> None:
        if (
            self.code not in ERROR_STATUS
            and self.code not in AUTH_ERROR_STATUS
            and self.code not in CONTROL_ERROR_STATUS
        ):
            raise ValueError(f"unknown Bedrock error code {self.code!r}")
        if not self.message:
            self.message = DEFAULT_MESSAGES[self.code]
        super().__init__(f"{self.code}: {self.message}")

    @property
    def status(self) -> int:
        return error_status(self.code)

    def headers(self, request_id: str) -> dict[str, str]:
        namespace = _CORAL_NAMESPACE if self.code in AUTH_ERROR_STATUS else _BEDROCK_NAMESPACE
        return {"x-amzn-ErrorType": self.code + namespace, "x-amzn-RequestId": request_id}
