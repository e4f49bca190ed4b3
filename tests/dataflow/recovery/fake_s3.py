"""An in-memory S3 client with the calls the recovery store makes, for the property test's thousands of calls
(moto's in-process S3 costs about 12 ms a call). Conditional PUTs behave as S3's (and moto 5.2.6's, which
test_recovery_units.py checks): If-None-Match: * refuses an existing key, If-Match a different ETag (412) or a
missing key (404). Versioned: every PUT and copy adds a version, as the recovery bucket does.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


def _error(code: str, status: int, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@dataclass(frozen=True)
class Version:
    body: bytes
    metadata: dict[str, str]
    version_id: str

    @property
    def etag(self) -> str:
        return f'"{hashlib.md5(self.body).hexdigest()}"'


class Body(io.BytesIO):
    def iter_chunks(self, size: int) -> Any:
        return iter(lambda: self.read(size), b"")


@dataclass
class FakeS3:
    objects: dict[tuple[str, str], list[Version]] = field(default_factory=dict)  # newest last
    _ids: Any = field(default_factory=itertools.count)

    def _current(self, bucket: str, key: str, operation: str) -> Version:
        versions = self.objects.get((bucket, key))
        if not versions:
            raise _error("NoSuchKey" if operation != "HeadObject" else "404", 404, operation)
        return versions[-1]

    def _add(self, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> Version:
        version = Version(body, dict(metadata), str(next(self._ids)))
        self.objects.setdefault((bucket, key), []).append(version)
        return version

    def put_object(
        self, *, Bucket: str, Key: str, Body: bytes, Metadata: dict[str, str] | None = None, **condition: str
    ) -> dict:
        versions = self.objects.get((Bucket, Key))
        if condition.get("IfNoneMatch") == "*" and versions:
            raise _error("PreconditionFailed", 412, "PutObject")
        if "IfMatch" in condition:
            if not versions:
                raise _error("NoSuchKey", 404, "PutObject")
            if versions[-1].etag.strip('"') != condition["IfMatch"].strip('"'):
                raise _error("PreconditionFailed", 412, "PutObject")
        return {"ETag": self._add(Bucket, Key, Body, Metadata or {}).etag}

    def get_object(self, *, Bucket: str, Key: str) -> dict:
        v = self._current(Bucket, Key, "GetObject")
        return {"Body": Body(v.body), "ETag": v.etag, "Metadata": dict(v.metadata), "VersionId": v.version_id}

    def head_object(self, *, Bucket: str, Key: str) -> dict:
        v = self._current(Bucket, Key, "HeadObject")
        return {"ETag": v.etag, "Metadata": dict(v.metadata), "VersionId": v.version_id}

    def copy_object(self, *, Bucket: str, Key: str, CopySource: dict[str, str]) -> dict:
        source = next(
            v
            for v in self.objects[(CopySource["Bucket"], CopySource["Key"])]
            if v.version_id == CopySource["VersionId"]
        )
        return {"CopyObjectResult": {"ETag": self._add(Bucket, Key, source.body, source.metadata).etag}}

    def delete_object(self, *, Bucket: str, Key: str) -> dict:
        self.objects.pop((Bucket, Key), None)
        return {}
