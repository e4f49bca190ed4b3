"""The partitions' durable copy in S3: one object per partition, its progress in the object's metadata.

Layout under s3://bucket/prefix/: `manifest.json` ({"partitions": N}, written once the whole set is there, so
its presence means the set is complete), `resume.json` (the resume epoch agreed for the latest start, resume.py)
and `part-<i>.sqlite3`, whose metadata holds the copy's as-of epoch (what its content vouches for, backup.py),
its digest, the progress rows it carries and the start whose run wrote it, so a pod learns the set's progress
from HEADs.

Every write is conditional (the fence): `If-None-Match: *` to create, `If-Match` on the ETag this pod last
fetched or wrote to replace. A refused write (412) means another writer (a replacement of this pod, a second
pod 0, an operator's restore) owns the object now: `Fenced` is raised and the caller stops writing.
Plain boto3: these calls run in the init step and in the supervisor, never on a dataflow worker. The endpoint
follows AWS_ENDPOINT_URL_S3 (moto's server locally), like every other client of the system.
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
RESUME = "resume.json"
_MISSING = ("NoSuchKey", "404", "NotFound")
_REFUSED = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


class Fenced(RuntimeError):
    """The store refused a conditional write: another writer owns the object; the message is one line."""


@dataclass(frozen=True)
class Manifest:
    partitions: int


@dataclass(frozen=True)
class StoredCopy:
    as_of: int  # every snapshot before this epoch is in the copy (backup.py)
    digest: str
    rows: Rows
    start: int = -1  # the start (resume.json) whose run wrote this copy; -1: written at creation
    etag: str = ""  # the object version's ETag (from the response, not the metadata)

    def metadata(self) -> dict[str, str]:
        return {
            "as-of": str(self.as_of),
            "digest": self.digest,
            "rows": orjson.dumps(self.rows.as_json()).decode(),
            "start": str(self.start),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], etag: str = "") -> StoredCopy:
        rows = Rows.from_json(orjson.loads(meta["rows"])) if meta.get("rows") else Rows()
        return cls(
            as_of=int(meta.get("as-of", -1)),
            digest=meta.get("digest", ""),
            rows=rows,
            start=int(meta.get("start", -1)),
            etag=etag,
        )


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


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

    def _put(self, name: str, body: bytes, etag: str | None, metadata: dict[str, str] | None = None) -> str:
        """A conditional PUT: create when `etag` is None, else replace exactly that version. Returns the new ETag."""
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._key(name), Body=body, Metadata=metadata or {}, **condition
            )
        except ClientError as err:
            if _code(err) in _REFUSED or (etag is not None and _code(err) in _MISSING):
                raise Fenced(
                    f"recovery.fenced object={self.url}/{name} was written by another pod since this one "
                    f"{'looked' if etag is None else 'wrote it'}: this pod stops writing (a replacement or a "
                    "restore owns it now)"
                ) from err
            raise
        return str(response["ETag"])

    def _get(self, name: str) -> tuple[bytes, str] | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise
        return response["Body"].read(), str(response["ETag"])

    def manifest(self) -> Manifest | None:
        got = self._get(MANIFEST)
        return None if got is None else Manifest(partitions=int(orjson.loads(got[0])["partitions"]))

    def write_manifest(self, manifest: Manifest) -> None:
        self._put(MANIFEST, orjson.dumps({"partitions": manifest.partitions}), None)

    def read_resume(self) -> tuple[dict, str] | None:
        """The resume record (resume.py) and its ETag, or None."""
        got = self._get(RESUME)
        return None if got is None else (orjson.loads(got[0]), got[1])

    def write_resume(self, record: dict, etag: str | None) -> str:
        return self._put(RESUME, orjson.dumps(record), etag)

    def copy(self, index: int) -> StoredCopy | None:
        """What the store holds of partition `index` (its metadata and ETag), or None."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(file_name(index)))
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise
        return StoredCopy.from_metadata(head.get("Metadata", {}), str(head.get("ETag", "")))

    def copies(self, count: int) -> dict[int, StoredCopy]:
        """Every stored partition of 0..count-1 (a missing one is absent)."""
        found: dict[int, StoredCopy] = {}
        for index in range(count):
            copy = self.copy(index)
            if copy is not None:
                found[index] = copy
        return found

    def download(self, index: int, target: Path) -> StoredCopy:
        """Fetch partition `index` into `target`; the copy's metadata and ETag are those of the bytes fetched."""
        response = self.client.get_object(Bucket=self.bucket, Key=self._key(file_name(index)))
        with target.open("wb") as out:
            for chunk in response["Body"].iter_chunks(1 << 20):
                out.write(chunk)
        return StoredCopy.from_metadata(response.get("Metadata", {}), str(response["ETag"]))

    def upload(self, index: int, source: Path, copy: StoredCopy, etag: str | None) -> str:
        """Store `source` as partition `index` if the store still holds version `etag` (None: if it holds none)."""
        return self._put(file_name(index), source.read_bytes(), etag, copy.metadata())
