"""The console's retention rules enforced by a real object store (Ceph RGW, S3 Object Lock):
a console over a store whose objects are in an Object Lock bucket (dock/objects_s3.py).

- Categorised evidential, a recording's objects are under COMPLIANCE (read back with boto3,
  not through our code), and the change is one custody entry ``object_lock_set``.
- A legal hold is the objects' legal hold (ON), its release turns it OFF.
- A recording due under the policy whose objects the object store still locks is not
  deleted: the job says "locked by the object store until ...", and the object store itself
  refuses a direct delete (AccessDenied). Once the lock has run out the job deletes it and
  the witness check explains the deletion.
- Nothing of this happens for a directory store.

Lock periods are seconds (``[object_lock]`` in retention.toml, ``unclassified_lock_s`` of
the S3 settings); the console's clock is the real one (RGW keeps real time), moved back
only while the recordings are received so that their retention started in the past.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

import pytest

pytest.importorskip("boto3")

import botocore.exceptions  # noqa: E402

from console.object_lock import OBJECT_LOCK_SET, lockable  # noqa: E402
from console.retention import run_job  # noqa: E402
from dock.holdings import device_holdings  # noqa: E402
from dock.instance import Dock  # noqa: E402
from dock.keys import DOCK_KEY_FILE, load_or_create_signing_key  # noqa: E402
from dock.store import blob_key, manifest_key  # noqa: E402
from dock.store_sqlite import DirectoryStore  # noqa: E402
from dock.translog import DockLog  # noqa: E402
from tests.console_b_fixtures import (  # noqa: E402
    DAY,
    SUP_A,
    SUP_B,
    World,
    catalog,
    enrol,
    record,
    world,
)

objects_s3 = pytest.importorskip("dock.objects_s3")
s3config = pytest.importorskip("dock.s3config")

KEEP_HORIZON_S = 30  # an evidential recording's COMPLIANCE horizon in these tests
WRITE_LOCK_S = 8  # the GOVERNANCE lock every object is written with (and renewed with)


@dataclass
class RealClock:
    """The wall clock (µs), ``offset`` µs away: RGW judges locks by real time."""

    offset: int = 0

    def __call__(self) -> int:
        return time.time_ns() // 1000 + self.offset


@pytest.fixture
def bucket(s3_bucket):
    """(endpoint, access key, secret key, region, bucket with Object Lock)."""
    svc, name = s3_bucket
    return svc.endpoint, svc.access_key, svc.secret_key, svc.region, name


def client(b):
    """A boto3 client of our own: what the server says, not what our code says."""
    import boto3
    import botocore.config

    endpoint, access, secret, region, _ = b
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def s3_world(tmp_path, b, *, offset_us: int = 0, only_b1: bool = False) -> World:
    """The catalog world (cam-a: a1, a2; cam-b: b1; or b1 alone), received while the clock
    was ``offset_us`` away, over a DirectoryStore whose objects are S3Objects."""
    endpoint, access, secret, region, name = b
    settings = s3config.S3Settings(
        endpoint, region, access, secret, unclassified_lock_s=WRITE_LOCK_S
    )
    objects = objects_s3.S3Objects(s3config.S3Location(name, "dock"), settings)
    root = tmp_path / "dock"
    root.mkdir()
    (root / "retention.toml").write_text(
        'default_category = "unclassified"\n[categories]\nunclassified = "until_categorised"\n'
        f'non-evidential = 31\nevidential = "keep"\n[object_lock]\n'
        f"keep_horizon_s = {KEEP_HORIZON_S}\nunclassified_s = {WRITE_LOCK_S}\n"
    )
    clock = RealClock(offset_us)
    key = load_or_create_signing_key(root / DOCK_KEY_FILE)
    store = DirectoryStore(root, key, objects=objects)
    dock = Dock(store, key, clock=clock, translog=DockLog(root, key, store))
    from console.core import open_console

    console = open_console(dock, root)
    cams = {d: enrol(dock, tmp_path, d) for d in ("cam-a", "cam-b")}
    now = clock()
    if not only_b1:
        record(dock, cams["cam-a"], "a1", at_us=now - 3 * DAY)
        record(dock, cams["cam-a"], "a2", at_us=now - DAY)
    record(dock, cams["cam-b"], "b1", at_us=now - DAY)
    clock.offset = 0
    return World(dock, console, clock, tmp_path, cams)  # type: ignore[arg-type]


def keys_of(w, dev, rec):
    return [
        k
        for r in device_holdings(w.dock.store, dev).records
        if r.fields.recording_id == rec
        for k in (blob_key(dev, r.held.segment_id), manifest_key(dev, r.held.segment_id))
        if w.dock.store.objects.exists(k)
    ]


def lock_entries(w):
    return [e for e in w.dock.store.custody_log(limit=10**6) if e.action == OBJECT_LOCK_SET]


def wait_until(t_s: float) -> None:
    """Wait for the RGW's real clock to pass ``t_s`` (a lock's end): the lock is the object
    store's, judged by its clock, so no fake clock can move it. Bounded by the caller's t_s."""
    left = t_s - time.time()
    assert left < 2 * WRITE_LOCK_S + 5, f"would wait {left:.0f} s"
    if left > 0:
        time.sleep(left)


@pytest.fixture
def w(tmp_path, bucket):
    got = s3_world(tmp_path, bucket)
    yield got
    got.close()


def test_categorised_evidential_is_compliance_and_one_custody_entry(w, bucket):
    s3 = client(bucket)
    assert lockable(w.dock.store)
    before = time.time()
    assert catalog(w).set_categories(SUP_A, "cam-a", "a2", ["evidential"]) is None
    keys = keys_of(w, "cam-a", "a2")
    assert len(keys) == 6  # blob and record of two segments and of the end record
    for k in keys:  # the server's word, not our code's
        got = s3.get_object_retention(Bucket=bucket[4], Key=f"dock/{k}")["Retention"]
        assert got["Mode"] == "COMPLIANCE"
        until = got["RetainUntilDate"].timestamp()
        assert before + KEEP_HORIZON_S <= until <= math.ceil(time.time()) + KEEP_HORIZON_S
    (e,) = lock_entries(w)
    assert e.actor == "account:sue" and e.device_id == "cam-a"
    assert e.detail["recording_id"] == "a2" and e.detail["seqs"] == [3, 4, 5]
    assert e.detail["mode"] == "COMPLIANCE" and e.detail["legal_hold"] is False
    assert e.detail["reason"] == "categorised"
    assert abs(e.detail["retain_until_us"] / 1e6 - until) < 1
    # a COMPLIANCE lock cannot be shortened, not even by us with the governance bypass
    sooner = time.time() + KEEP_HORIZON_S / 2
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.put_object_retention(
            Bucket=bucket[4], Key=f"dock/{keys[0]}", BypassGovernanceRetention=True,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": datetime.fromtimestamp(sooner)},
        )  # fmt: skip
    run_job(w.console, None)  # within half the horizon: nothing to renew, no entry
    assert [x.index for x in lock_entries(w) if x.detail["recording_id"] == "a2"] == [e.index]


def test_a_legal_hold_is_the_objects_legal_hold_until_released(w, bucket):
    s3 = client(bucket)
    cat = catalog(w)
    keys = keys_of(w, "cam-b", "b1")

    def holds():
        return {
            s3.get_object_legal_hold(Bucket=bucket[4], Key=f"dock/{k}")["LegalHold"]["Status"]
            for k in keys
        }

    assert cat.set_hold(SUP_B, "cam-b", "b1", "complaint 17") is None
    assert holds() == {"ON"}
    on = lock_entries(w)[-1]
    assert on.detail["legal_hold"] is True and on.detail["reason"] == "legal_hold_set"
    assert on.detail["seqs"] == [0, 1, 2] and on.actor == "account:bob"
    assert cat.release_hold(SUP_B, "cam-b", "b1", "complaint closed") is None
    assert holds() == {"OFF"}
    assert lock_entries(w)[-1].detail["legal_hold"] is False


def test_the_object_store_refuses_a_deletion_before_the_lock_ends(tmp_path, bucket, monkeypatch):
    """b1 was received 31 days ago (the clock set back), unclassified: a job renews its
    GOVERNANCE lock (at least half of WRITE_LOCK_S left). Categorised non-evidential it is
    due under the policy, and still locked by the object store. (b1 alone: each object's
    lock is three requests, and the job must ask before the lock runs out.)"""
    w = s3_world(tmp_path, bucket, offset_us=-31 * DAY - 1_000_000, only_b1=True)
    try:
        s3, name = client(bucket), bucket[4]
        run_job(w.console, None)
        catalog(w).set_categories(SUP_B, "cam-b", "b1", ["non-evidential"])
        keys = keys_of(w, "cam-b", "b1")
        job = run_job(w.console, SUP_B)
        assert job.deleted == [] and not job.errors
        (r,) = job.refused
        assert r["recording_id"] == "b1"
        assert r["why"].startswith("locked by the object store until ")
        assert not [e for e in w.dock.store.custody_log(limit=10**6)
                    if e.action == "retention_deleted"]  # fmt: skip
        # not only our policy: the object store itself refuses
        version = s3.head_object(Bucket=name, Key=f"dock/{keys[0]}")["VersionId"]
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            s3.delete_object(Bucket=name, Key=f"dock/{keys[0]}", VersionId=version)
        until = max(
            s3.get_object_retention(Bucket=name, Key=f"dock/{k}")["Retention"][
                "RetainUntilDate"
            ].timestamp()
            for k in keys
        )
        wait_until(until + 1)
        again = run_job(w.console, SUP_B)
        assert [d["recording_id"] for d in again.deleted] == ["b1"] and not again.errors
        assert not any(w.dock.store.objects.exists(k) for k in keys)
        listed = s3.list_object_versions(Bucket=name, Prefix="dock/cam-b/")
        assert not listed.get("Versions") and not listed.get("DeleteMarkers")
        got = witness_check(w, monkeypatch, bucket)
        assert got.exit_code == 0, got.output
        assert "explained: device cam-b seq 0 (recording b1): deleted under retention" in (
            got.output
        )
        assert "withheld" not in got.output
    finally:
        w.close()


def witness_check(w, monkeypatch, b):
    """`bwv verify STORE` as tests/test_journey_console_retention.py runs it, on the store
    as its ``dock.toml`` names it (objects in the bucket, the folder's SQLite index), the S3
    keys from the environment as `bwv dock serve` takes them."""
    from dock.backends import Backends, bind_backends
    from tests.test_journey_console_retention import witness_check as check

    endpoint, access, secret, region, name = b
    for k, v in (
        ("BWV_S3_ENDPOINT", endpoint), ("AWS_ACCESS_KEY_ID", access),
        ("AWS_SECRET_ACCESS_KEY", secret), ("AWS_DEFAULT_REGION", region),
    ):  # fmt: skip
        monkeypatch.setenv(k, v)
    bind_backends(w.dock.store.root, Backends(objects=f"s3://{name}/dock"))
    return check(w)


def test_nothing_changes_for_a_directory_store(tmp_path):
    w = world(tmp_path)
    try:
        assert not lockable(w.dock.store)
        cat = catalog(w)
        assert cat.set_categories(SUP_A, "cam-a", "a2", ["evidential"]) is None
        assert cat.set_hold(SUP_B, "cam-b", "b1", "complaint") is None
        run_job(w.console, None)
        assert lock_entries(w) == []
    finally:
        w.close()
