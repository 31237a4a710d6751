"""The S3 object store (dock/objects_s3.py) against a real Ceph RADOS Gateway, and its
settings (dock/s3config.py).

The RGW comes from the ``s3_bucket`` fixture (tests/servers.py: a fresh bucket with Object
Lock on a single-node Ceph). Where a test must outlive an object's retention it waits for the
server's clock, bounded (``_wait_past``): retention is the server's decision, by its time.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

pytest.importorskip("boto3")

import botocore.exceptions  # noqa: E402

from dock.objects_s3 import (  # noqa: E402
    ObjectLocked,
    ObjectStoreError,
    S3Objects,
)
from dock.s3config import S3Location, S3Settings, load_s3_settings, parse_s3_url  # noqa: E402

MiB = 1 << 20
SECRET = "s3cr3t-Value-That-Must-Not-Show"


def _settings(service: Any, **kw: Any) -> S3Settings:
    return S3Settings(
        endpoint_url=service.endpoint,
        region=service.region,
        access_key=service.access_key,
        secret_key=service.secret_key,
        **kw,
    )


def _key(n: int, ext: str = "blob") -> str:
    return f"cam-7/{hashlib.sha256(str(n).encode()).hexdigest()}.{ext}"


def _store(
    s3_bucket: tuple[Any, str], prefix: str = "fleet", clock_s: Any = time.time, **kw: Any
) -> S3Objects:
    service, bucket = s3_bucket
    return S3Objects(S3Location(bucket, prefix), _settings(service, **kw), clock_s=clock_s)


def _versions(store: S3Objects, key: str) -> list[dict[str, Any]]:
    full = store.location.key(key)
    page = store.client.list_object_versions(Bucket=store.bucket, Prefix=full)
    out = page.get("Versions", []) + page.get("DeleteMarkers", [])
    return [v for v in out if v["Key"] == full]


def _wait_past(until_s: float, limit_s: float = 15.0) -> None:
    """Wait until a retention date is past by the server's clock (the RGW runs on this
    machine, so ours, plus a second for its whole-second dates). Bounded."""
    assert until_s - time.time() < limit_s, "the test's retention is longer than it may wait"
    while time.time() < until_s + 1.2:
        time.sleep(0.2)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response["Error"]["Code"])


# --------------------------------------------------------------------------- writing, reading


def test_round_trip_single_put_locked_for_the_unclassified_period(s3_bucket):
    now = time.time()
    store = _store(s3_bucket, clock_s=lambda: now)
    store.ensure_bucket()  # the fixture's bucket has Object Lock: accepted as it is
    data = os.urandom(100_000)
    store.put_bytes(_key(1), data, sha256=hashlib.sha256(data).hexdigest())
    assert store.exists(_key(1)) and not store.exists(_key(2))
    with store.open(_key(1)) as f:
        assert f.read() == data
        f.seek(50_000)
        assert f.read(10) == data[50_000:50_010]
    lock = store.lock_state(_key(1))
    assert lock.mode == "GOVERNANCE" and not lock.legal_hold
    assert lock.retain_until_s is not None
    assert abs(lock.retain_until_s - (now + 31 * 86400)) <= 1
    # under the location's prefix, nowhere else
    listed = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"fleet/{_key(1)}"]


def test_round_trip_multipart_streamed_and_locked(s3_bucket, tmp_path):
    # RGW's smallest part is 5 MiB (rgw_multipart_min_part_size): 3 parts, the last short
    store = _store(s3_bucket, part_size=5 * MiB, multipart_threshold=5 * MiB)
    data = os.urandom(11 * MiB + 123)
    src = tmp_path / "staged"
    src.write_bytes(data)
    store.put_file(_key(3), src, sha256=hashlib.sha256(data).hexdigest())
    assert not src.exists()  # consumed, as DirectoryObjects moves it
    head = store.client.head_object(Bucket=store.bucket, Key=f"fleet/{_key(3)}")
    assert head["ETag"].strip('"').endswith("-3")
    # Pacific's RGW ignores the lock headers of a multipart upload: the store locks it
    assert store.lock_state(_key(3)).mode == "GOVERNANCE"
    with store.open(_key(3)) as f:
        f.seek(7 * MiB)
        assert f.read(MiB) == data[7 * MiB : 8 * MiB]
        f.seek(0)
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()


def test_an_object_is_never_replaced(s3_bucket, tmp_path):
    store = _store(s3_bucket)
    store.put_bytes(_key(4), b"first")
    with pytest.raises(FileExistsError):
        store.put_bytes(_key(4), b"second")
    src = tmp_path / "again"
    src.write_bytes(b"third")
    with pytest.raises(FileExistsError):
        store.put_file(_key(4), src)
    assert src.exists()  # not consumed
    with store.open(_key(4)) as f:
        assert f.read() == b"first"
    assert len(_versions(store, _key(4))) == 1


@pytest.mark.parametrize("size", [1000, 6 * MiB])
def test_a_wrong_sha256_is_refused_and_nothing_is_left(s3_bucket, tmp_path, size):
    store = _store(s3_bucket, part_size=5 * MiB, multipart_threshold=5 * MiB)
    data = os.urandom(size)
    src = tmp_path / "staged"
    src.write_bytes(data)
    with pytest.raises(ObjectStoreError, match="signed SHA-256"):
        store.put_file(_key(5), src, sha256=hashlib.sha256(data + b"x").hexdigest())
    assert src.exists()
    assert not store.exists(_key(5)) and _versions(store, _key(5)) == []
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


@pytest.mark.parametrize("operation", ["PutObject", "UploadPart"])
def test_bytes_changed_in_transit_are_refused_by_the_server(s3_bucket, operation):
    """What the RGW itself checks: the body it received against the request's signed
    SHA-256 and Content-MD5. A body changed after signing is refused, nothing is stored,
    and a multipart upload is aborted."""
    store = _store(s3_bucket, part_size=5 * MiB, multipart_threshold=5 * MiB)

    def corrupt(request: Any, **_: Any) -> None:
        body = request.body.read() if hasattr(request.body, "read") else request.body
        request.body = bytes([body[0] ^ 1]) + body[1:]

    store.client.meta.events.register(f"before-send.s3.{operation}", corrupt)
    data = os.urandom(1000 if operation == "PutObject" else 6 * MiB)
    with pytest.raises(ObjectStoreError, match="refused") as err:
        store.put_bytes(_key(6), data, sha256=hashlib.sha256(data).hexdigest())
    assert "XAmzContentSHA256Mismatch" in str(err.value) or "BadDigest" in str(err.value)
    store.client.meta.events.unregister(f"before-send.s3.{operation}", corrupt)
    assert _versions(store, _key(6)) == []
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_missing_objects_and_bad_keys(s3_bucket):
    store = _store(s3_bucket)
    with pytest.raises(FileNotFoundError):
        store.open(_key(7))
    with pytest.raises(FileNotFoundError):
        store.delete(_key(7))
    for bad in ["../x.blob", f"cam-7/{'0' * 64}.txt", "cam-7/abc.blob", f"a/b/{'0' * 64}.blob"]:
        with pytest.raises(ValueError):
            store.exists(bad)


# --------------------------------------------------------------------------- locks and deletion


def test_a_locked_object_survives_the_store_and_boto3(s3_bucket):
    store = _store(s3_bucket)
    store.put_bytes(_key(8), b"evidence")
    full = f"fleet/{_key(8)}"
    (version,) = [v["VersionId"] for v in _versions(store, _key(8))]
    with pytest.raises(ObjectLocked, match=r"cam-7/.*governance retention until 20\d\d-"):
        store.delete(_key(8))
    client = store.client
    with pytest.raises(botocore.exceptions.ClientError) as err:
        client.delete_object(Bucket=store.bucket, Key=full, VersionId=version)
    assert _code(err.value) == "AccessDenied"
    # a new version, and a plain DELETE (a delete marker): the locked version is intact
    client.put_object(Bucket=store.bucket, Key=full, Body=b"forged")
    client.delete_object(Bucket=store.bucket, Key=full)
    got = client.get_object(Bucket=store.bucket, Key=full, VersionId=version)["Body"].read()
    assert got == b"evidence"
    assert not store.exists(_key(8))  # hidden by the marker, not deleted


def test_delete_after_retention_removes_every_version(s3_bucket):
    store = _store(s3_bucket, unclassified_lock_s=2)
    store.put_bytes(_key(9), b"short-lived")
    full = f"fleet/{_key(9)}"
    until = store.lock_state(_key(9)).retain_until_s
    assert until is not None
    with pytest.raises(ObjectLocked):
        store.delete(_key(9))
    store.client.put_object(Bucket=store.bucket, Key=full, Body=b"a second version")
    store.client.delete_object(Bucket=store.bucket, Key=full)  # and a delete marker
    store.put_bytes(_key(10), b"a neighbour")  # same prefix, other key: untouched
    assert len(_versions(store, _key(9))) == 3
    _wait_past(until)
    store.delete(_key(9))
    assert _versions(store, _key(9)) == []
    assert store.exists(_key(10))
    with pytest.raises(FileNotFoundError):
        store.delete(_key(9))


def test_a_legal_hold_blocks_delete_after_retention(s3_bucket):
    store = _store(s3_bucket, unclassified_lock_s=2)
    store.put_bytes(_key(11), b"held")
    store.set_legal_hold(_key(11), True)
    lock = store.lock_state(_key(11))
    assert lock.legal_hold and lock.retain_until_s is not None
    _wait_past(lock.retain_until_s)
    with pytest.raises(ObjectLocked, match="legal hold"):
        store.delete(_key(11))
    assert store.exists(_key(11))
    store.set_legal_hold(_key(11), False)
    store.delete(_key(11))
    assert _versions(store, _key(11)) == []


def test_set_lock_never_shortens_and_compliance_stays(s3_bucket):
    store = _store(s3_bucket, unclassified_lock_s=3)
    store.put_bytes(_key(12), b"categorised")
    first = store.lock_state(_key(12)).retain_until_s
    assert first is not None
    store.set_lock(_key(12), "GOVERNANCE", first - 100)  # shorter: kept as it is
    assert store.lock_state(_key(12)).retain_until_s == first
    store.set_lock(_key(12), "COMPLIANCE", first + 2)  # governance → compliance, longer
    lock = store.lock_state(_key(12))
    assert (lock.mode, lock.retain_until_s) == ("COMPLIANCE", first + 2)
    store.set_lock(_key(12), "GOVERNANCE", first + 1)  # neither downgraded nor shortened
    lock = store.lock_state(_key(12))
    assert (lock.mode, lock.retain_until_s) == ("COMPLIANCE", first + 2)
    with pytest.raises(ValueError):
        store.set_lock(_key(12), "NONE", first)

    # the server itself: a governance bypass neither deletes nor weakens a compliance lock
    full, client = f"fleet/{_key(12)}", store.client
    (version,) = [v["VersionId"] for v in _versions(store, _key(12))]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        client.delete_object(
            Bucket=store.bucket, Key=full, VersionId=version, BypassGovernanceRetention=True
        )
    assert _code(err.value) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        client.put_object_retention(
            Bucket=store.bucket,
            Key=full,
            VersionId=version,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": lock_date(first + 2)},
            BypassGovernanceRetention=True,
        )
    assert _code(err.value) == "AccessDenied"
    with pytest.raises(ObjectLocked, match="compliance retention"):
        store.delete(_key(12))
    # whereas the bypass does remove a governance lock (so the refusal above is the mode's)
    store.put_bytes(_key(13), b"unclassified")
    (v13,) = [v["VersionId"] for v in _versions(store, _key(13))]
    client.delete_object(
        Bucket=store.bucket, Key=f"fleet/{_key(13)}", VersionId=v13, BypassGovernanceRetention=True
    )
    assert _versions(store, _key(13)) == []


def lock_date(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


# --------------------------------------------------------------------------- bucket, failures


def test_ensure_bucket_creates_with_object_lock_or_refuses_a_bucket_without(s3_bucket):
    service, _ = s3_bucket
    fresh = S3Objects(S3Location(f"t-{uuid.uuid4().hex[:20]}"), _settings(service))
    fresh.ensure_bucket()
    conf = fresh.client.get_object_lock_configuration(Bucket=fresh.bucket)
    assert conf["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    fresh.ensure_bucket()  # again: it is there, with Object Lock

    plain = S3Objects(S3Location(f"t-{uuid.uuid4().hex[:20]}"), _settings(service))
    plain.client.create_bucket(Bucket=plain.bucket)
    with pytest.raises(ObjectStoreError, match="without Object Lock"):
        plain.ensure_bucket()


def test_an_unreachable_endpoint_is_an_object_store_error_quickly():
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key="AKIDEXAMPLE",
        secret_key=SECRET,
    )
    store = S3Objects(S3Location("nowhere"), settings)
    start = time.monotonic()
    with pytest.raises(ObjectStoreError) as err:
        store.exists(_key(1))
    assert time.monotonic() - start < 10
    assert "\n" not in str(err.value) and SECRET not in str(err.value)
    with pytest.raises(ObjectStoreError):
        store.put_bytes(_key(1), b"x")
    with pytest.raises(ObjectStoreError):
        store.ensure_bucket()


# --------------------------------------------------------------------------- settings


def test_parse_s3_url():
    assert parse_s3_url("s3://evidence") == S3Location("evidence", "")
    assert parse_s3_url("s3://evidence/dock-a/objects/") == S3Location("evidence", "dock-a/objects")
    assert str(parse_s3_url("s3://evidence/p")) == "s3://evidence/p"
    for bad in [
        "evidence",
        "http://evidence",
        "s3://",
        "s3://Evidence",
        "s3://ab",
        "s3://ev..x",
        "s3://evidence//x",
        "s3://evidence/../x",
        "s3://evidence/a?b",
        "s3://user@evidence",
    ]:
        with pytest.raises(ValueError):
            parse_s3_url(bad)


def test_settings_from_the_environment_and_secrets_not_shown():
    env = {
        "BWV_S3_ENDPOINT": "http://127.0.0.1:7480",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "BWV_S3_PART_SIZE": str(6 * MiB),
    }
    s = load_s3_settings(env)
    assert (s.endpoint_url, s.region, s.secret_key, s.part_size) == (
        "http://127.0.0.1:7480",
        "us-east-1",
        SECRET,
        6 * MiB,
    )
    store = S3Objects(S3Location("evidence"), s)
    for text in (repr(s), str(s), repr(store), str(store)):
        assert SECRET not in text and "AKIDEXAMPLE" not in text
    with pytest.raises(ValueError, match="both"):
        load_s3_settings({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"})


@pytest.mark.parametrize(
    "text",
    [
        f'endpoint_url = "http://h:1"\naccess_key = "AK"\nsecret_key = "{SECRET}"\n',
        f'[s3]\nBWV_S3_ENDPOINT = "http://h:1"\nAWS_ACCESS_KEY_ID = "AK"\n'
        f'AWS_SECRET_ACCESS_KEY = "{SECRET}"\n',
        f"# s3.env\nexport BWV_S3_ENDPOINT=http://h:1\nAWS_ACCESS_KEY_ID=AK\n"
        f"AWS_SECRET_ACCESS_KEY='{SECRET}'\nAWS_DEFAULT_REGION=us-east-1\n",
    ],
)
def test_credentials_file_0600_read_0644_refused(tmp_path, text):
    path = tmp_path / "s3-credentials"
    path.write_text(text)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600") as err:
        load_s3_settings({}, path)
    assert SECRET not in str(err.value)
    path.chmod(0o600)
    s = load_s3_settings({"AWS_DEFAULT_REGION": "eu-1", "BWV_S3_ENDPOINT": "http://x:2"}, path)
    assert (s.endpoint_url, s.access_key, s.secret_key) == ("http://h:1", "AK", SECRET)
    assert s.region in ("eu-1", "us-east-1")  # the file's when it says, else the env's


def test_credentials_file_unknown_setting_named_without_its_value(tmp_path: Path):
    path = tmp_path / "creds"
    path.write_text(f"AWS_SECRET_ACCES_KEY={SECRET}\n")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="AWS_SECRET_ACCES_KEY") as err:
        load_s3_settings({}, path)
    assert SECRET not in str(err.value)


def test_reader_reads_nothing_past_the_end(s3_bucket):
    store = _store(s3_bucket)
    store.put_bytes(_key(14), b"")
    with store.open(_key(14)) as f:
        assert f.read() == b""
    store.put_bytes(_key(15), b"abc")
    with store.open(_key(15)) as f:
        f.seek(0, io.SEEK_END)
        assert f.read() == b"" and f.tell() == 3
