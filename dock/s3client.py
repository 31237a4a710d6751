"""The S3 client's pieces for dock/objects_s3.py: its configuration, its errors as the
store's, a multipart part's hashes, and a seekable reader of one object version."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped,unused-ignore]
import botocore.config  # type: ignore[import-untyped,unused-ignore]
import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]

from dock.s3config import S3Settings

MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchVersion")
CLIENT_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


class ObjectStoreError(OSError):
    """The object store could not do it: unreachable, refused, or a checksum mismatch. An
    ``OSError``, as a failing disk is to ``DirectoryObjects``."""


class ObjectLocked(ObjectStoreError, PermissionError):
    """The server refused to delete or overwrite an object under retention or legal hold."""


def client_config() -> botocore.config.Config:
    """Retries (standard mode, 3 attempts), short connect and bounded read timeouts, path
    style, payload signing on (the server checks each body's SHA-256), and no automatic
    flexible checksums (botocore >= 1.36 would send CRC32 trailers by default, which RGW
    before Squid refuses: MissingContentLength); we send Content-MD5 and an explicit
    ``x-amz-checksum-sha256`` header ourselves, which keeps botocore off the trailer path
    over HTTPS too."""
    kwargs: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 3},
        "connect_timeout": 5,
        "read_timeout": 60,
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path", "payload_signing_enabled": True},
    }
    if "request_checksum_calculation" in botocore.config.Config.OPTION_DEFAULTS:
        kwargs["request_checksum_calculation"] = "when_required"
        kwargs["response_checksum_validation"] = "when_required"
    return botocore.config.Config(**kwargs)


def make_client(settings: S3Settings, config: botocore.config.Config | None = None) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        config=config or client_config(),
    )


def code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@contextlib.contextmanager
def errors(what: str) -> Iterator[None]:
    """Client library errors as one-line ``ObjectStoreError``s (messages of botocore name
    the operation, the endpoint and the server's code, never the credentials)."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        raise ObjectStoreError(
            f"the object store refused {what}: {code(exc) or 'error'} (HTTP {status(exc)})"
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise ObjectStoreError(f"the object store failed {what}: {exc}") from None


class Part:
    def __init__(self, number: int, data: bytes) -> None:
        self.number = number
        self.md5 = hashlib.md5(data, usedforsecurity=False).digest()
        self.sha256 = hashlib.sha256(data).digest()
        self.server_sha256: str | None = None

    def check(self, resp: dict[str, Any], full: str) -> None:
        if resp.get("ETag", "").strip('"') != self.md5.hex():
            raise ObjectStoreError(f"part {self.number} of {full}: the server's ETag is wrong")
        self.server_sha256 = resp.get("ChecksumSHA256")
        if self.server_sha256 not in (None, b64(self.sha256)):
            raise ObjectStoreError(f"part {self.number} of {full}: the server's SHA-256 is wrong")

    def completed(self) -> dict[str, Any]:
        out: dict[str, Any] = {"PartNumber": self.number, "ETag": f'"{self.md5.hex()}"'}
        if self.server_sha256 is not None:  # the server does flexible checksums
            out["ChecksumSHA256"] = self.server_sha256
        return out


class ObjectReader(io.RawIOBase):
    """One object version read by ranged GETs: a GET from the position on the first read
    and after each seek, streamed."""

    def __init__(self, client: Any, bucket: str, full: str, version: str | None, size: int) -> None:
        self._client = client
        self._bucket = bucket
        self._full = full
        self._version = version
        self._size = size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        if pos != self._pos:
            self._drop()
            self._pos = pos
        return pos

    def _open_body(self) -> Any:
        args: dict[str, Any] = {"Bucket": self._bucket, "Key": self._full}
        if self._version:
            args["VersionId"] = self._version
        if self._pos:
            args["Range"] = f"bytes={self._pos}-"
        with errors(f"reading {self._full}"):
            return self._client.get_object(**args)["Body"]

    def readinto(self, b: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._body is None:
            self._body = self._open_body()
        try:
            data = self._body.read(len(b))
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            self._drop()
            raise ObjectStoreError(f"reading {self._full} failed: {exc}") from None
        if not data:
            self._drop()
            raise ObjectStoreError(f"reading {self._full}: the object ended early")
        n = len(data)
        b[:n] = data
        self._pos += n
        return n

    def _drop(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()


def check_written(full: str, ours: str | None, signed: str | None, what: str = "SHA-256") -> None:
    """Refuse a write whose bytes, as we sent them, are not the signed ones."""
    if signed is not None and ours != signed.lower():
        raise ObjectStoreError(f"object {full} not stored: its bytes do not have the signed {what}")


def utc_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
