"""Bedrock's modeled errors, serialised the restJson1 way so botocore raises the same exception classes.

botocore reads the error code from the `x-amzn-ErrorType` header (the part before `:`), falling back to
the body's `__type`/`code`; we send both, plus the `message` body field that AWS sends.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

DEFAULT_MESSAGES: dict[str, str] = {
    "ValidationException": "The request is invalid.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": "The specified model was not found.",
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "ModelErrorException": "The model returned an error.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ModelNotReadyException": "The model is not ready to serve inference requests. Try again later.",
    "InternalServerException": "The server encountered an internal error while processing the request.",
    "ServiceUnavailableException": "The service is temporarily unable to handle the request.",
}

TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."

_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


@dataclass
class BedrockError(Exception):
    """An error the server answers with; `code` is one of ERROR_STATUS's keys."""

    code: str
    message: str = ""

    def __post_init__(self) -> None:
        if self.code not in ERROR_STATUS:
            raise ValueError(f"unknown Bedrock error code {self.code!r}")
        if not self.message:
            self.message = DEFAULT_MESSAGES[self.code]
        super().__init__(f"{self.code}: {self.message}")

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def headers(self, request_id: str) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.code + _ERROR_TYPE_SUFFIX, "x-amzn-RequestId": request_id}
