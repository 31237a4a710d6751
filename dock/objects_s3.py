"""Objects in an S3 bucket with Object Lock (Ceph RGW, or AWS S3): the fleet's ``ObjectStore``
(dock/store.py), the same keys and promises as ``DirectoryObjects`` (dock/objects.py).

Writing. Every object is a new version, ``ObjectLockMode=GOVERNANCE`` until ``clock +
unclassified_lock_s`` (raised later by the console's ``set_lock``); a key is never replaced
(a HEAD first, ``FileExistsError`` if it has an object; two docks past it: both kept).

What is verified, and by whom, before a put is acknowledged (returns):
- by us, before anything is sent: the SHA-256 of the bytes sent equals ``sha256`` (the
  signed hash), when given; a multipart upload hashes the parts as it reads and sends them
  (one in memory at a time) and compares before completing, else aborts.
- by the server, on every PUT and part (verified on Ceph 16.2 Pacific, the test server):
  the SigV4 payload hash ``x-amz-content-sha256`` (payload signing is on, over HTTPS too:
  the server recomputes the SHA-256 of the body it received and refuses a mismatch,
  ``XAmzContentSHA256Mismatch``), and ``Content-MD5`` (``BadDigest``). For a single PUT the
  payload hash *is* the object's SHA-256, which we checked equal to ``sha256``: the server
  has verified the signed hash itself. For a multipart upload it verified each part's
  SHA-256 and MD5, and we verified their concatenation against ``sha256``.
- by us, from a HEAD of the new version: the ETag is the MD5 we sent (single PUT) or
  ``md5(part md5s)-N`` (multipart), the size the size sent, and the version locked.
- flexible checksums: every PUT and part also carries ``x-amz-checksum-sha256`` (an
  explicit header, so botocore never switches to the aws-chunked trailers Pacific refuses).
  A server that supports them (AWS; RGW from Squid) verifies it and answers with
  ``ChecksumSHA256``, which must then equal ours (multipart: the composite of the parts').
  Pacific ignores the header (a wrong value is accepted) and answers none: there the
  checks above are what holds.
A mismatch raises ``ObjectStoreError``; a version written but found wrong is deleted again
(governance bypass, our own new version): nothing acknowledged, nothing left.

Pacific ignores a multipart upload's Object Lock headers (no retention) and answers its
completion with an empty ETag: the HEAD above sees the lock missing and the store sets it
(``put_object_retention``) before acknowledging; a crash between leaves that version
unlocked, unacknowledged, and the console's lock job locks every held record each run.

Reading (``open``) pins the current version, read by ranged GETs (seekable, nothing
spooled). Deleting removes every version and delete marker of the key; the server refuses a
version under retention or legal hold: ``ObjectLocked``. The client library's errors
(unreachable, timeouts, 5xx after retries, refusals) are ``ObjectStoreError``, one line,
never with credentials.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]

from crypto.digests import StoredDigest, stored_digest_of
from dock.protocol import is_device_id, is_segment_id
from dock.s3client import (
    CLIENT_ERRORS,
    MISSING,
    ObjectLocked,
    ObjectReader,
    ObjectStoreError,
    Part,
    b64,
    check_written,
    client_config,
    code,
    errors,
    make_client,
    status,
    utc_text,
)
from dock.s3config import S3Location, S3Settings

__all__ = [
    "ObjectLock",
    "ObjectLocked",
    "ObjectStoreError",
    "S3Objects",
    "client_config",
    "make_client",
]

log = logging.getLogger("bwv.dock.objects_s3")

MAX_PARTS = 10_000
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class ObjectLock:
    mode: str | None  # "GOVERNANCE" | "COMPLIANCE" | None
    retain_until_s: float | None
    legal_hold: bool


class S3Objects:
    """``ObjectStore`` over an S3 bucket with Object Lock; see the module docstring."""

    def __init__(
        self,
        location: S3Location,
        settings: S3Settings,
        *,
        client: Any = None,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.location = location
        self.settings = settings
        self.bucket = location.bucket
        self.client = client if client is not None else make_client(settings)
        self.clock_s = clock_s

    def __repr__(self) -> str:
        return f"S3Objects({str(self.location)!r}, endpoint={self.settings.endpoint_url!r})"

    # -- bucket

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock, or check the one there has it (Object Lock
        cannot be added to a bucket here: an existing bucket without it is refused)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise ObjectStoreError(
                    f"cannot use bucket {self.bucket}: {code(exc)} (HTTP {status(exc)})"
                ) from None
            self._create_bucket()
            return
        except botocore.exceptions.BotoCoreError as exc:
            raise ObjectStoreError(f"the object store failed checking the bucket: {exc}") from None
        with errors(f"reading bucket {self.bucket}'s Object Lock configuration"):
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except botocore.exceptions.ClientError as exc:
                if "ObjectLockConfiguration" not in code(exc):
                    raise
                conf = {}
        enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise ObjectStoreError(
                f"bucket {self.bucket} exists without Object Lock; evidence needs a bucket"
                " created with Object Lock enabled: use a new bucket name"
            )

    def _create_bucket(self) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
        if self.settings.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        with errors(f"creating bucket {self.bucket}"):
            self.client.create_bucket(**args)
        log.info("created bucket %s with Object Lock", self.bucket)

    # -- keys

    def _key(self, key: str) -> str:
        device, _, name = key.partition("/")
        stem, _, ext = name.partition(".")
        if not (is_device_id(device) and is_segment_id(stem) and ext in _KINDS):
            raise ValueError(f"not an object key: {key!r}")
        return self.location.key(key)

    def _head(self, full: str) -> dict[str, Any] | None:
        """The current version's HEAD, None if the key has no current object."""
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=full))
        except botocore.exceptions.ClientError as exc:
            if code(exc) in MISSING:
                return None
            raise ObjectStoreError(
                f"the object store refused reading {full}: {code(exc)} (HTTP {status(exc)})"
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ObjectStoreError(f"the object store failed reading {full}: {exc}") from None

    def exists(self, key: str) -> bool:
        return self._head(self._key(key)) is not None

    # -- writing

    def put_bytes(self, key: str, data: bytes, sha256: str | None = None) -> None:
        full = self._key(key)
        self._refuse_existing(key, full)
        if len(data) > self.settings.multipart_threshold:
            self._put_multipart(full, io.BytesIO(data), len(data), sha256, None)
        else:
            self._put_single(full, data, sha256)

    def put_file(
        self,
        key: str,
        src: Path,
        sha256: str | None = None,
        stored_digest: str | None = None,
        synced: bool = False,
    ) -> None:
        """Upload ``src`` (streamed, one part in memory at a time; consumed, as
        ``DirectoryObjects`` moves it; ``synced`` or not), checked against ``stored_digest``."""
        full = self._key(key)
        self._refuse_existing(key, full)
        with open(src, "rb") as f:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
            if size > self.settings.multipart_threshold:
                self._put_multipart(full, f, size, sha256, stored_digest)
            else:
                data = f.read()
                check_written(full, stored_digest_of(data), stored_digest, "stored digest")
                self._put_single(full, data, sha256)
        Path(src).unlink()

    def _refuse_existing(self, key: str, full: str) -> None:
        if self._head(full) is not None:
            raise FileExistsError(f"object {key} exists; objects are never replaced")

    def _until(self) -> datetime:
        return datetime.fromtimestamp(
            math.ceil(self.clock_s() + self.settings.unclassified_lock_s), UTC
        )

    def _put_single(self, full: str, data: bytes, sha256: str | None) -> None:
        sha = hashlib.sha256(data)
        check_written(full, sha.hexdigest(), sha256)
        md5 = hashlib.md5(data, usedforsecurity=False)
        until = self._until()
        with errors(f"writing {full}"):
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=data,
                ContentMD5=b64(md5.digest()),
                ChecksumSHA256=b64(sha.digest()),
                ObjectLockMode="GOVERNANCE",
                ObjectLockRetainUntilDate=until,
            )
        version = resp.get("VersionId")
        if resp.get("ChecksumSHA256") not in (None, b64(sha.digest())):
            self._discard(full, version)
            raise ObjectStoreError(
                f"object {full} not stored: the server's SHA-256 of it is not the one sent"
            )
        self._confirm(full, version, md5.hexdigest(), len(data), until)

    def _put_multipart(
        self, full: str, f: BinaryIO, size: int, sha256: str | None, stored_digest: str | None
    ) -> None:
        part_size = max(self.settings.part_size, math.ceil(size / MAX_PARTS))
        until = self._until()
        with errors(f"starting the upload of {full}"):
            upload = self.client.create_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                ChecksumAlgorithm="SHA256",
                ObjectLockMode="GOVERNANCE",
                ObjectLockRetainUntilDate=until,
            )
        upload_id = upload["UploadId"]
        try:
            parts, whole, digest = self._send_parts(full, upload_id, f, part_size)
            check_written(full, whole, sha256)
            check_written(full, digest.hexdigest(), stored_digest, "stored digest")
            with errors(f"completing the upload of {full}"):
                resp = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [p.completed() for p in parts]},
                )
        except BaseException:
            self._abort(full, upload_id)
            raise
        version = resp.get("VersionId")
        composite = b64(hashlib.sha256(b"".join(p.sha256 for p in parts)).digest())
        got = resp.get("ChecksumSHA256")
        if got is not None and got.split("-")[0] != composite:
            self._discard(full, version)
            raise ObjectStoreError(
                f"object {full} not stored: the server's SHA-256 of its parts is not that sent"
            )
        etag = hashlib.md5(b"".join(p.md5 for p in parts), usedforsecurity=False).hexdigest()
        self._confirm(full, version, f"{etag}-{len(parts)}", size, until)

    def _confirm(
        self, full: str, version: str | None, etag: str, size: int, until: datetime
    ) -> None:
        """The version written, as the server now has it: its ETag and size are those of
        the bytes sent, and it is locked. (RGW Pacific ignores the lock headers of a
        multipart upload and answers its completion with an empty ETag: the lock is then
        set here, before the put is acknowledged.) Anything wrong: the version is removed."""
        if not version:
            raise ObjectStoreError(f"object {full}: the server gave no version (not versioned?)")
        try:
            with errors(f"checking {full}"):
                head = self.client.head_object(Bucket=self.bucket, Key=full, VersionId=version)
            problem = None
            if head.get("ETag", "").strip('"') != etag:
                problem = f"the server's ETag {head.get('ETag')} is not that of the bytes sent"
            elif int(head.get("ContentLength", -1)) != size:
                problem = f"the server holds {head.get('ContentLength')} bytes, not {size}"
            elif head.get("ObjectLockMode") is None:
                with errors(f"locking {full}"):
                    self.client.put_object_retention(
                        Bucket=self.bucket,
                        Key=full,
                        VersionId=version,
                        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
                    )
                if self._lock_of(full, version).mode is None:
                    problem = "the server did not lock it"
        except ObjectStoreError:
            self._discard(full, version)
            raise
        if problem:
            self._discard(full, version)
            raise ObjectStoreError(f"object {full} not stored: {problem}")

    def _send_parts(
        self, full: str, upload_id: str, f: BinaryIO, part_size: int
    ) -> tuple[list[Part], str, StoredDigest]:
        whole = hashlib.sha256()
        digest = StoredDigest()
        parts: list[Part] = []
        while chunk := f.read(part_size):
            whole.update(chunk)
            digest.update(chunk)
            part = Part(len(parts) + 1, chunk)
            with errors(f"uploading part {part.number} of {full}"):
                resp = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=part.number,
                    Body=chunk,
                    ContentMD5=b64(part.md5),
                    ChecksumSHA256=b64(part.sha256),
                )
            part.check(resp, full)
            parts.append(part)
        return parts, whole.hexdigest(), digest

    def _abort(self, full: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except CLIENT_ERRORS as exc:
            log.error("could not abort the upload of %s (parts may be left): %s", full, exc)

    def _discard(self, full: str, version_id: str | None) -> None:
        """Delete the version we just wrote and found wrong (ours: governance bypass)."""
        if not version_id:
            log.error("object %s was written wrong and has no version id to remove", full)
            return
        try:
            self.client.delete_object(
                Bucket=self.bucket, Key=full, VersionId=version_id, BypassGovernanceRetention=True
            )
        except CLIENT_ERRORS as exc:
            log.error("could not remove the wrongly written %s (%s): %s", full, version_id, exc)

    # -- reading

    def open(self, key: str) -> BinaryIO:
        """The current version, pinned at open, as a seekable stream (ranged GETs)."""
        full = self._key(key)
        head = self._head(full)
        if head is None:
            raise FileNotFoundError(f"no object {key}")
        raw = ObjectReader(
            self.client, self.bucket, full, head.get("VersionId"), int(head["ContentLength"])
        )
        return io.BufferedReader(raw, buffer_size=1 << 20)

    # -- deleting

    def _versions(self, full: str) -> tuple[list[str], list[str]]:
        """The key's object versions and delete markers (exact key, not the prefix)."""
        versions: list[str] = []
        markers: list[str] = []
        with errors(f"listing the versions of {full}"):
            pages = self.client.get_paginator("list_object_versions")
            for page in pages.paginate(Bucket=self.bucket, Prefix=full):
                versions += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == full]
                markers += [
                    m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == full
                ]
        return versions, markers

    def delete(self, key: str) -> None:
        """Remove every version of ``key`` (then its delete markers), never bypassing a
        lock: ``ObjectLocked`` if the server refuses, ``FileNotFoundError`` if none."""
        full = self._key(key)
        versions, markers = self._versions(full)
        for version in versions[::-1] + markers:  # oldest (the store's) first
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=version)
            except botocore.exceptions.ClientError as exc:
                if code(exc) == "AccessDenied":
                    raise ObjectLocked(self._locked_message(key, full, version)) from None
                if code(exc) in MISSING:
                    continue
                raise ObjectStoreError(
                    f"the object store refused deleting {key}: {code(exc)} (HTTP {status(exc)})"
                ) from None
            except botocore.exceptions.BotoCoreError as exc:
                raise ObjectStoreError(f"the object store failed deleting {key}: {exc}") from None
        if not versions:
            raise FileNotFoundError(f"no object {key}")
        log.info("deleted object %s (%d versions)", key, len(versions))

    def _locked_message(self, key: str, full: str, version: str) -> str:
        try:
            lock = self._lock_of(full, version)
        except ObjectStoreError:
            return f"object {key} is locked: the object store refused to delete it"
        why = []
        if lock.mode and lock.retain_until_s is not None:
            why.append(f"{lock.mode.lower()} retention until {utc_text(lock.retain_until_s)}")
        if lock.legal_hold:
            why.append("a legal hold")
        reason = " and ".join(why) or "a lock"
        return f"object {key} is locked ({reason}): the object store refused to delete it"

    # -- locks

    def _current_version(self, key: str) -> tuple[str, str]:
        full = self._key(key)
        head = self._head(full)
        if head is None:
            raise FileNotFoundError(f"no object {key}")
        return full, str(head.get("VersionId") or "")

    def _lock_of(self, full: str, version: str) -> ObjectLock:
        ref: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if version:
            ref["VersionId"] = version
        mode, until, hold = None, None, False
        with errors(f"reading the lock of {full}"):
            try:
                ret = self.client.get_object_retention(**ref).get("Retention", {})
                mode = ret.get("Mode")
                if ret.get("RetainUntilDate") is not None:
                    until = ret["RetainUntilDate"].timestamp()
            except botocore.exceptions.ClientError as exc:
                if "ObjectLockConfiguration" not in code(exc):
                    raise
            try:
                legal = self.client.get_object_legal_hold(**ref).get("LegalHold", {})
                hold = legal.get("Status") == "ON"
            except botocore.exceptions.ClientError as exc:
                if "ObjectLockConfiguration" not in code(exc):
                    raise
        return ObjectLock(mode, until, hold)

    def lock_state(self, key: str) -> ObjectLock:
        """The current version's retention and legal hold, as the server has them."""
        return self._lock_of(*self._current_version(key))

    def set_lock(self, key: str, mode: str, retain_until_s: float) -> None:
        """Retention of the current version: never shorter than it is, and a COMPLIANCE
        lock stays COMPLIANCE; GOVERNANCE → COMPLIANCE is allowed (with the governance
        bypass S3 asks for changing a governance lock)."""
        if mode not in LOCK_MODES:
            raise ValueError(f"object lock mode is GOVERNANCE or COMPLIANCE, not {mode!r}")
        full, version = self._current_version(key)
        cur = self._lock_of(full, version)
        until = float(math.ceil(retain_until_s))
        if cur.retain_until_s is not None:
            until = max(until, cur.retain_until_s)
        if cur.mode == "COMPLIANCE":
            mode = "COMPLIANCE"
        if (cur.mode, cur.retain_until_s) == (mode, until):
            return
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Retention": {"Mode": mode, "RetainUntilDate": datetime.fromtimestamp(until, UTC)},
        }
        if version:
            args["VersionId"] = version
        if cur.mode == "GOVERNANCE" and mode == "COMPLIANCE":
            args["BypassGovernanceRetention"] = True
        with errors(f"setting the lock of {key}"):
            self.client.put_object_retention(**args)

    def set_legal_hold(self, key: str, on: bool) -> None:
        full, version = self._current_version(key)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "LegalHold": {"Status": "ON" if on else "OFF"},
        }
        if version:
            args["VersionId"] = version
        with errors(f"setting the legal hold of {key}"):
            self.client.put_object_legal_hold(**args)


_KINDS = ("blob", "manifest", "unsigned")
