"""Retention and legal hold (console/retention.py, dock/store_retire.py): a recording
categorised non-evidential is deleted 31 days on by the retention job; the deletion is a
custody event written before the bytes go, the log's leaves stay, and the witness check
(`bwv verify STORE --witness-key W --checkpoint C`) says OK and explains the deletion
instead of calling it withheld. A legal hold stops it; unclassified and evidential
recordings are kept; a crash between the entry and the bytes is finished by the next job."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from bwv.cli import main
from console.catalog import Forbidden
from console.retention import PolicyError, due, jobs, load_policy, run_job
from dock.checkpoints import latest_checkpoint
from dock.holdings import device_holdings
from dock.store import blob_key, manifest_key
from tests.console_b_fixtures import DAY, INV, SUP_A, SUP_B, T0, catalog, record, world
from tlog.cosignature import CosignatureSigner
from tlog.note import add_signatures, split_note

WITNESS = CosignatureSigner("watchdog.example", SigningKey(hashlib.sha256(b"wd").digest()))


@pytest.fixture
def w(tmp_path):
    got = world(tmp_path)
    cat = catalog(got)
    cat.set_categories(SUP_B, "cam-b", "b1", ["non-evidential"])
    cat.set_categories(SUP_A, "cam-a", "a2", ["evidential"])  # a1 stays unclassified
    yield got
    got.close()


def entries(w, action):
    return [e for e in w.dock.store.custody_log(limit=10**6) if e.action == action]


def objects_of(w, dev, rec):
    return [
        k
        for r in device_holdings(w.dock.store, dev).records
        if r.fields.recording_id == rec
        for k in (blob_key(dev, r.held.segment_id), manifest_key(dev, r.held.segment_id))
    ]


def witness_check(w, *extra):
    """`bwv verify STORE` against the dock's latest checkpoint, cosigned by the witness."""
    cp = latest_checkpoint(w.root / "dock")
    text, _ = split_note(cp.note)
    (w.root / "checkpoint").write_bytes(
        add_signatures(cp.note, [WITNESS.cosign(text, 1_800_000_000)])
    )
    (w.root / "witness.vkey").write_text(WITNESS.vkey + "\n")
    args = ["verify", str(w.root / "dock"), "--witness-key", str(w.root / "witness.vkey")]
    return CliRunner().invoke(main, [*args, "--checkpoint", str(w.root / "checkpoint"), *extra])


def test_non_evidential_footage_goes_after_31_days_and_the_witness_check_explains_it(w):
    w.clock.now = T0 + 30 * DAY
    assert due(w.console, w.clock.now) == []
    assert run_job(w.console, None).deleted == []
    w.clock.now = T0 + 32 * DAY
    now_due = due(w.console, w.clock.now)
    assert [(d.recording_id, d.retention_days) for d in now_due] == [("b1", 31)]
    keys = objects_of(w, "cam-b", "b1")
    job = run_job(w.console, SUP_B)
    assert [d["recording_id"] for d in job.deleted] == ["b1"] and not job.errors
    gone = entries(w, "retention_deleted")
    assert [e.detail["seq"] for e in gone] == [0, 1, 2]  # two segments and the end record
    first = gone[0]
    assert first.actor == "account:bob" and first.device_id == "cam-b"
    assert first.detail["recording_id"] == "b1" and first.detail["job"] == job.id
    assert first.detail["categories"] == ["non-evidential"]
    assert first.detail["retention_days"] == 31
    assert first.detail["record_sha256"] == first.segment_id
    assert not any(w.dock.store.objects.exists(k) for k in keys)
    h = device_holdings(w.dock.store, "cam-b")
    assert h.records == [] and h.chain().gaps == []
    row = {r.recording_id: r for r in catalog(w).list(SUP_B)}["b1"]
    assert row.state == "deleted" and row.times_text.startswith("recorded between")
    assert [j.id for j in jobs(w.console)] == [job.id, job.id - 1]

    got = witness_check(w)
    assert got.exit_code == 0, got.output
    assert "VERIFIED" in got.output and "withheld" not in got.output
    assert (
        "explained: device cam-b seq 0 (recording b1): deleted under retention on "
        f"2027-02-16 08:00:00 UTC by account:bob, custody entry {first.index}" in got.output
    )
    assert "recording b1 (device cam-b): 3 records in the log: deleted" in got.output
    js = json.loads(witness_check(w, "--json").output)
    assert js["ok"] and [e["seq"] for e in js["explained"]] == [0, 1, 2]
    status = [
        "dock", "status", "--store", str(w.root / "dock"), "--verify",
        "--witness-key", str(w.root / "witness.vkey"), "--checkpoint", str(w.root / "checkpoint"),
    ]  # fmt: skip
    out = CliRunner().invoke(main, status).output
    assert "explained: device cam-b seq 2 (recording b1): deleted under retention" in out
    assert "log: every leaf the witness saw is held" in out


def test_deleting_without_the_custody_entry_is_still_withheld(w):
    """The explanation is the entry: bytes gone without one are found out as before."""
    w.clock.now = T0 + 32 * DAY
    for k in objects_of(w, "cam-b", "b1"):
        w.dock.store.objects.delete(k)
    w.dock.store._q("DELETE FROM segments WHERE device_id='cam-b'")
    w.dock.translog.sync()
    got = witness_check(w)
    assert got.exit_code == 1 and "withheld: device cam-b seq 0" in got.output


def test_a_legal_hold_stops_the_deletion_until_it_is_released(w):
    cat = catalog(w)
    cat.set_hold(SUP_B, "cam-b", "b1", "complaint 17")
    w.clock.now = T0 + 40 * DAY
    assert due(w.console, w.clock.now) == []
    assert [d.held for d in due(w.console, w.clock.now, include_held=True)] == [True]
    job = run_job(w.console, None)
    assert job.deleted == [] and job.by == "console"
    assert [(r["recording_id"], r["why"]) for r in job.refused] == [("b1", "on legal hold")]
    assert entries(w, "retention_deleted") == []
    assert all(w.dock.store.objects.exists(k) for k in objects_of(w, "cam-b", "b1"))
    cat.release_hold(SUP_B, "cam-b", "b1", "complaint closed")
    assert [d["recording_id"] for d in run_job(w.console, None).deleted] == ["b1"]
    assert entries(w, "retention_deleted")[0].actor == "console"


def test_unclassified_and_evidential_recordings_are_kept(w):
    w.clock.now = T0 + 3650 * DAY
    assert [d.recording_id for d in due(w.console, w.clock.now)] == ["b1"]
    rows = {r.recording_id: r for r in catalog(w).list(SUP_A)}
    assert rows["a1"].retention_until_us is None and rows["a2"].retention_until_us is None


def test_the_longest_retention_among_the_categories_wins(w):
    (w.root / "dock" / "retention.toml").write_text(
        'default_category = "unclassified"\n[categories]\nunclassified = "until_categorised"\n'
        'non-evidential = 31\nevidential = "keep"\ntraffic = 90\n'
    )
    catalog(w).set_categories(SUP_B, "cam-b", "b1", ["non-evidential", "traffic"])
    w.clock.now = T0 + 60 * DAY
    assert due(w.console, w.clock.now) == []
    w.clock.now = T0 + 91 * DAY
    assert [d.retention_days for d in due(w.console, w.clock.now)] == [90]


def test_a_retention_policy_that_cannot_be_used_says_why(tmp_path):
    (tmp_path / "retention.toml").write_text("[categories]\nfoo = -3\n")
    with pytest.raises(PolicyError, match="foo"):
        load_policy(tmp_path)
    (tmp_path / "retention.toml").write_text("[categories]\nfoo = 3\n")
    with pytest.raises(PolicyError, match="default category"):
        load_policy(tmp_path)
    assert load_policy(tmp_path / "nowhere").describe("non-evidential") == (
        "deleted 31 days after the recording"
    )


def test_an_account_without_retention_run_is_refused(w):
    w.clock.now = T0 + 40 * DAY
    with pytest.raises(Forbidden):
        run_job(w.console, INV)
    assert entries(w, "access_refused")[-1].detail["attempt"] == "run retention"
    assert entries(w, "retention_deleted") == []


def test_a_crash_between_the_entry_and_the_bytes_is_finished_by_the_next_job(w, monkeypatch):
    w.clock.now = T0 + 40 * DAY
    keys = objects_of(w, "cam-b", "b1")
    real = type(w.dock.store.objects).delete

    def crash(self, key):
        raise OSError("the dock lost power")

    monkeypatch.setattr(type(w.dock.store.objects), "delete", crash)
    job = run_job(w.console, None)
    assert job.errors and "lost power" in job.errors[0]
    assert [e.detail["seq"] for e in entries(w, "retention_deleted")] == [0]  # then it stopped
    assert all(w.dock.store.objects.exists(k) for k in keys)  # the bytes are still there
    assert [r.seq for r in w.dock.store.unfinished_retirements()] == [0]
    monkeypatch.setattr(type(w.dock.store.objects), "delete", real)
    again = run_job(w.console, None)
    assert not again.errors and [d["recording_id"] for d in again.deleted] == ["b1"]
    assert [e.detail["seq"] for e in entries(w, "retention_deleted")] == [0, 1, 2]  # once each
    assert not any(w.dock.store.objects.exists(k) for k in keys)
    assert w.dock.store.unfinished_retirements() == []
    assert witness_check(w).exit_code == 0


def test_a_camera_still_holding_a_deleted_record_is_told_it_was_received(w):
    seg = device_holdings(w.dock.store, "cam-b").records[0].held.segment_id
    w.clock.now = T0 + 40 * DAY
    run_job(w.console, None)
    state = w.dock.store.upload_state("cam-b", seg)
    assert state is not None and state.complete and state.receipt is not None
    record(w.dock, w.cams["cam-b"], "b2", at_us=T0 + 39 * DAY)  # the camera records on
    assert entries(w, "gap") == []  # the deleted seqs before it are not a gap
    assert device_holdings(w.dock.store, "cam-b").chain().gaps == []
    from dock.routes.status import device_status  # what the camera's GET /v1/status says

    chain = device_status(w.dock.store, w.dock.store.get_device("cam-b")).chain
    assert chain.gaps == [] and chain.held == 3 and chain.first_seq == 3


def test_an_exhibit_of_the_cameras_other_recording_is_unaffected_by_the_deletion(w, tmp_path):
    """a1 (unclassified, then non-evidential) goes; a2's exhibit says what it said before."""
    cat = catalog(w)
    cat.set_categories(SUP_A, "cam-a", "a1", ["non-evidential"])

    def findings(z):
        with zipfile.ZipFile(z) as f:
            name = next(n for n in f.namelist() if n.endswith("report.json"))
            report = json.loads(f.read(name))
        return sorted((x["kind"], x["detail"]) for x in report["findings"])

    before = findings(cat.export(INV, "cam-a", "a2", tmp_path / "before"))
    w.clock.now = T0 + 40 * DAY
    assert [d["recording_id"] for d in run_job(w.console, None).deleted] == ["a1", "b1"]
    assert findings(cat.export(INV, "cam-a", "a2", tmp_path / "after")) == before
    assert not any("gap" in k or "withheld" in k for k, _ in before)


def test_two_jobs_at_once_do_not_both_delete(w):
    from console.retention import SCHEMA

    w.console.db.ensure(SCHEMA)
    w.clock.now = T0 + 40 * DAY
    with w.console.db.tx() as c:  # the scheduled job has started and not finished
        c.execute(
            "INSERT INTO retention_jobs(started_at_us, by) VALUES(?, 'console')", (w.clock.now,)
        )
    busy = run_job(w.console, SUP_B)
    assert busy.deleted == [] and "is running" in busy.errors[0]
    assert entries(w, "retention_deleted") == []
    w.clock.now += 2 * 3600 * 1_000_000  # it crashed: an hour on, a job runs again
    assert [d["recording_id"] for d in run_job(w.console, SUP_B).deleted] == ["b1"]
