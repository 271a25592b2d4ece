"""Presigned transfers for the S3 backend: the bytes go between the client and the bucket, once.

Through the gateway every byte crosses two Python processes (gateway, artifacts service) and, on
S3, a third copy from the service's temp file to the bucket. With a presigned plan the service
only authorizes and checks: it signs short-lived URLs, the client sends the bytes straight to the
bucket, then asks the service to commit.

Unverified bytes never sit under a blob's name: an upload plan points at a *staging* key,
``<staging prefix><project>/<digest>/<random token>``, unguessable and bound to the project and
digest. The commit reads the staged object once, hashing it as it streams (the ``blake3``
package, incremental, multi-threaded), and only if it hashes to the digest copies it (server-side,
no bytes through the service) to ``<prefix><digest>`` and records possession; the staged object is
deleted either way, so a wrong digest stores nothing. Files above the part size (``CAIRN_ARTIFACTS_S3_PART_BYTES``, 64 MiB) go as a multipart
upload whose part URLs are all signed at once (the client sends them in parallel).

The URLs name the bucket's *public* endpoint (``CAIRN_ARTIFACTS_S3_PUBLIC_ENDPOINT``, default
the service's own endpoint): a signature covers the host, so it must be the address clients
reach. Downloads get a presigned GET of the stored blob; the client verifies what it received
(the SDK always hashes a download before keeping it), so the service does not read it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import blake3 as blake3_stream

from cairn.kernel.errors import InvalidInput, NotFound, PayloadTooLarge
from cairn.services.artifacts.backends import MULTIPART_CHUNK, S3Backend
from cairn.services.artifacts.blobs import DigestMismatch

PART_SIZE = MULTIPART_CHUNK  # 64 MiB: 4 parts for 256 MiB; S3 allows 10,000 parts (625 GiB)
MIN_PART_SIZE = 5 << 20  # S3's smallest part (but the last)
MAX_PARTS = 10_000
TOKEN_HEX = 32
READ_CHUNK = 8 << 20


@dataclass(frozen=True)
class StagedPart:
    number: int
    etag: str


class S3Presigner:
    """Signs upload/download URLs for one :class:`S3Backend` and commits staged uploads."""

    def __init__(self, backend: S3Backend, *, public_endpoint: str | None, region: str,
                 access_key: str | None, secret_key: str | None, expires: int,
                 staging_prefix: str, part_size: int = PART_SIZE) -> None:
        import boto3
        from botocore.config import Config

        if staging_prefix.startswith(backend.prefix) or backend.prefix.startswith(staging_prefix):
            raise ValueError(f"the staging prefix {staging_prefix!r} must not overlap the blob prefix "
                             f"{backend.prefix!r}: GC would take staged uploads for blobs")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"a multipart part is at least {MIN_PART_SIZE} bytes, not {part_size}")
        self.backend = backend
        self.part_size = part_size
        self.expires = expires
        self.staging_prefix = staging_prefix
        endpoint = public_endpoint or backend.s3.meta.endpoint_url
        # signing is local: this client never connects, it only computes signatures for the
        # address clients use (path-style, so a bucket name needs no DNS entry)
        self.signer = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                                   aws_secret_access_key=secret_key, region_name=region,
                                   config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def staging_key(self, project: str, digest: str, token: str) -> str:
        if len(token) != TOKEN_HEX or any(c not in "0123456789abcdef" for c in token):
            raise InvalidInput("upload token must be the 32 hex digits the upload plan gave",
                               details={"field": "token"})
        return f"{self.staging_prefix}{project}/{digest}/{token}"

    def _sign(self, method: str, **params: Any) -> str:
        return self.signer.generate_presigned_url(method, Params={"Bucket": self.backend.bucket, **params},
                                                  ExpiresIn=self.expires)

    def upload_plan(self, project: str, digest: str, size: int) -> dict[str, Any]:
        """Where to PUT the bytes: one URL, or one per ``PART_SIZE`` part (multipart)."""
        token = secrets.token_hex(TOKEN_HEX // 2)
        key = self.staging_key(project, digest, token)
        plan: dict[str, Any] = {"mode": "presigned", "token": token, "expires_in": self.expires,
                                "part_size": self.part_size}
        if size <= self.part_size:
            plan["url"] = self._sign("put_object", Key=key)
            return plan
        count = -(-size // self.part_size)
        if count > MAX_PARTS:
            raise InvalidInput(f"a blob of {size} bytes needs {count} parts of {self.part_size} bytes; "
                               f"S3 allows {MAX_PARTS}", details={"size": size})
        upload_id = self.backend.s3.create_multipart_upload(Bucket=self.backend.bucket, Key=key)["UploadId"]
        plan["upload_id"] = upload_id
        plan["parts"] = [{"number": n, "url": self._sign("upload_part", Key=key, UploadId=upload_id, PartNumber=n),
                          "size": min(self.part_size, size - (n - 1) * self.part_size)} for n in range(1, count + 1)]
        return plan

    def commit(self, project: str, digest: str, token: str, upload_id: str | None,
               parts: list[StagedPart], max_bytes: int) -> int:
        """Verify a staged upload and store it under ``digest``; returns its size. DigestMismatch
        (nothing stored) if the staged bytes hash to anything else; NotFound if nothing was staged."""
        from botocore.exceptions import ClientError

        s3, bucket = self.backend.s3, self.backend.bucket
        key = self.staging_key(project, digest, token)
        try:
            if upload_id is not None:
                if not parts:
                    raise InvalidInput("a multipart commit lists its parts' numbers and ETags",
                                       details={"field": "parts"})
                s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag}
                                               for p in sorted(parts, key=lambda p: p.number)]})
            staged = s3.get_object(Bucket=bucket, Key=key)
            body = staged["Body"]
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload"):
                raise NotFound(f"nothing was uploaded for token {token}; PUT the bytes to the plan's "
                               "URL(s) first, or ask for a new plan", details={"digest": digest}) from None
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise InvalidInput(f"the parts do not make a complete upload ({code}): send every part "
                                   "and list each with the ETag its PUT answered", details={"code": code}) from None
            raise
        try:
            if int(staged.get("ContentLength", 0)) > max_bytes:  # a presigned PUT's size is not signed
                body.close()
                raise PayloadTooLarge(f"blob is larger than the limit of {max_bytes} bytes; nothing was "
                                      "stored. Raise CAIRN_ARTIFACTS_MAX_BLOB_BYTES or split the file")
            hasher = blake3_stream.blake3(max_threads=blake3_stream.blake3.AUTO)
            size = 0
            with body:
                while chunk := body.read(READ_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
            actual = hasher.hexdigest()
            if actual != digest:
                raise DigestMismatch(
                    f"uploaded bytes hash to {actual}, not {digest}; nothing was stored. "
                    "Re-hash the file (it may have changed while uploading) and retry",
                    details={"expected": digest, "actual": actual, "size": size})
            s3.copy({"Bucket": bucket, "Key": key}, bucket, self.backend._key(digest),
                    Config=self.backend.transfer)
            return size
        finally:
            s3.delete_object(Bucket=bucket, Key=key)

    def download_urls(self, groups: list[list[str]]) -> dict[str, Any]:
        """Presigned GETs of blobs the caller may read (checked), in the groups' shape. Their
        existence is not checked here (a request each): a missing one answers 404 from the
        bucket, and the client then asks for it alone, which answers with Cairn's error."""
        return {"mode": "presigned", "expires_in": self.expires,
                "urls": [[self._sign("get_object", Key=self.backend._key(d)) for d in group] for group in groups]}

    def download_url(self, digest: str) -> dict[str, Any]:
        """A presigned GET of a stored blob (the caller's right to read it was checked)."""
        if not self.backend.exists(digest):
            raise NotFound(f"blob {digest} is not stored; upload it again", details={"digest": digest})
        return {"mode": "presigned", "url": self._sign("get_object", Key=self.backend._key(digest)),
                "expires_in": self.expires}
