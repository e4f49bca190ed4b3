"""botocore error shapes, as aiobotocore and boto3 raise them from a service's error answer."""

from __future__ import annotations

from botocore.exceptions import ClientError


def client_error(code: str, status: int, message: str = "injected", operation: str = "Converse") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )
