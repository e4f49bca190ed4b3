"""The partitions' durable copy in S3: one object per partition, its progress in the object's metadata.

Layout under s3://bucket/prefix/: `manifest.json` ({"partitions": N}, written once the whole set is there, so
its presence means the set is complete) and `part-<i>.sqlite3`, whose metadata holds the copy's as-of epoch
(frontier.py), its digest and the progress rows it carries, so a pod learns the set's progress from HEADs.
Plain boto3: these calls run in the init step and in the supervisor's backup thread, never on a dataflow
worker. The endpoint follows AWS_ENDPOINT_URL_S3 (moto's server locally), like every other client of the system.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import orjson
from botocore.exceptions import ClientError

from dataflow.recovery.partition_file import Rows, file_name

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    partitions: int


@dataclass(frozen=True)
class StoredCopy:
    as_of: int  # every snapshot before this epoch is in the copy
    digest: str
    rows: Rows

    def metadata(self) -> dict[str, str]:
        return {"as-of": str(self.as_of), "digest": self.digest, "rows": orjson.dumps(self.rows.as_json()).decode()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> StoredCopy:
        rows = Rows.from_json(orjson.loads(meta["rows"])) if meta.get("rows") else Rows()
        return cls(as_of=int(meta.get("as-of", -1)), digest=meta.get("digest", ""), rows=rows)


@dataclass
class Store:
    bucket: str
    prefix: str
    client: Any = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = boto3.client("s3")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def manifest(self) -> Manifest | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(MANIFEST))["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return Manifest(partitions=int(orjson.loads(body)["partitions"]))

    def write_manifest(self, manifest: Manifest) -> None:
        body = orjson.dumps({"partitions": manifest.partitions})
        self.client.put_object(Bucket=self.bucket, Key=self._key(MANIFEST), Body=body)

    def copy(self, index: int) -> StoredCopy | None:
        """What the store holds of partition `index` (its metadata), or None."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(file_name(index)))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return StoredCopy.from_metadata(head.get("Metadata", {}))

    def copies(self, count: int) -> dict[int, StoredCopy]:
        """Every stored partition of 0..count-1 (a missing one is absent)."""
        found: dict[int, StoredCopy] = {}
        for index in range(count):
            copy = self.copy(index)
            if copy is not None:
                found[index] = copy
        return found

    def download(self, index: int, target: Path) -> None:
        self.client.download_file(self.bucket, self._key(file_name(index)), str(target))

    def upload(self, index: int, source: Path, copy: StoredCopy) -> None:
        self.client.upload_file(
            str(source), self.bucket, self._key(file_name(index)), ExtraArgs={"Metadata": copy.metadata()}
        )
