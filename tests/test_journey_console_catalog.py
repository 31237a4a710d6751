"""The console's catalog of recordings and its firewall for sensitive ones (console/
catalog.py): a supervisor marks a recording of their officer's camera sensitive ("victim
present"); from then on an investigator without a grant sees only its id and times, cannot
find it by camera, category or status, cannot open or export it, and each attempt is in the
custody log naming them; with a grant they can. Lifting the mark takes two supervisors."""

from __future__ import annotations

import zipfile

import pytest

from console.catalog import CatalogError, Forbidden, RecordingQuery
from tests.console_b_fixtures import (
    AUD,
    DAY,
    INV,
    INV2,
    SUP_A,
    SUP_A2,
    SUP_B,
    T0,
    TECH,
    catalog,
    world,
)


@pytest.fixture
def w(tmp_path):
    got = world(tmp_path)
    yield got
    got.close()


def entries(w, action=None):
    got = w.dock.store.custody_log(limit=10**6)
    return [e for e in got if action is None or e.action == action]


def by_id(rows):
    return {r.recording_id: r for r in rows}


def test_a_listing_shows_each_recording_with_its_times_state_and_camera(w):
    rows = by_id(catalog(w).list(AUD))
    assert set(rows) == {"a1", "a2", "b1"}
    a1 = rows["a1"]
    assert a1.device_id == "cam-a" and a1.state == "verified" and a1.segments == 2
    assert a1.times_text == "recorded between 2027-01-12 08:00:00 and 2027-01-12 08:02:00 (UTC)"
    assert a1.categories == ["unclassified"] and a1.legal_hold is False and not a1.restricted
    assert a1.retention_until_us is None  # unclassified: kept until categorised
    viewed = entries(w, "viewed")[-1]
    assert viewed.actor == "account:ada" and viewed.detail["shown"] == 3


def test_a_technician_may_not_read_recordings_and_the_refusal_is_logged(w):
    cat = catalog(w)
    with pytest.raises(Forbidden):
        cat.list(TECH)
    with pytest.raises(Forbidden):
        cat.detail(TECH, "cam-a", "a1")
    refused = entries(w, "access_refused")
    assert [e.actor for e in refused] == ["account:tom", "account:tom"]
    assert refused[-1].detail["recording_id"] == "a1"


def test_a_sensitive_recording_is_id_and_times_only_for_an_investigator_without_a_grant(w):
    cat = catalog(w)
    cat.mark_sensitive(SUP_A, "cam-a", "a1", "victim present")
    row = by_id(cat.list(INV))["a1"]
    assert row.restricted and row.sensitive
    assert row.times_text.startswith("recorded between 2027-01-12 08:00:00")
    assert (row.device_id, row.categories, row.state, row.segments) == (None, None, None, None)
    assert row.legal_hold is None and row.retention_until_us is None
    mine = by_id(cat.list(SUP_A))["a1"]  # the marker is granted
    assert not mine.restricted and mine.device_id == "cam-a" and mine.sensitive
    # listed by time, not by camera: its place in the list does not tell its camera
    assert [r.recording_id for r in cat.list(INV)] == ["a2", "b1", "a1"]
    others = by_id(cat.list(INV))["a2"]  # the officer's other recordings are not touched
    assert not others.restricted and others.device_id == "cam-a"
    marked = entries(w, "marked_sensitive")
    assert marked[-1].actor == "account:sue" and marked[-1].detail["reason"] == "victim present"


def test_search_by_camera_category_or_status_never_finds_a_restricted_recording(w):
    cat = catalog(w)
    cat.set_categories(SUP_A, "cam-a", "a1", ["evidential"])
    cat.mark_sensitive(SUP_A, "cam-a", "a1", "witness present")

    def found(account, **q):
        return sorted(r.recording_id for r in cat.list(account, RecordingQuery(**q)))

    assert found(INV, device_id="cam-a") == ["a2"]
    assert found(INV, category="evidential") == []
    assert found(INV, status="verified") == ["a2", "b1"]
    assert found(INV, text="cam-a") == ["a2"]
    assert found(INV, text="a1") == ["a1"]  # its id is not hidden
    assert found(INV, date_to_us=T0 - 2 * DAY) == ["a1"]  # nor its times
    assert found(SUP_A, device_id="cam-a") == ["a1", "a2"]
    assert found(SUP_A, category="evidential") == ["a1"]
    assert found(SUP_A, category="unclassified") == ["a2", "b1"]
    cat.grant(SUP_A, "cam-a", "a1", "ivy", "case 4711")
    assert found(INV, device_id="cam-a") == ["a1", "a2"]
    assert found(INV, category="evidential") == ["a1"]


def test_opening_or_exporting_without_a_grant_is_refused_and_logged_then_a_grant_opens_it(
    w, tmp_path
):
    cat = catalog(w)
    cat.mark_sensitive(SUP_A, "cam-a", "a1", "victim present")
    with pytest.raises(Forbidden):
        cat.detail(INV, "cam-a", "a1")
    with pytest.raises(Forbidden):
        cat.export(INV, "cam-a", "a1", tmp_path / "out")
    refused = entries(w, "access_refused")
    assert [(e.actor, e.detail["attempt"]) for e in refused] == [
        ("account:ivy", "view"),
        ("account:ivy", "export"),
    ]
    assert all("restricted" in e.detail["why"] for e in refused)
    assert not entries(w, "exported") and not (tmp_path / "out").exists()

    cat.grant(SUP_A, "cam-a", "a1", "ivy", "case 4711: the victim's statement")
    got = cat.detail(INV, "cam-a", "a1")
    assert got.row.device_id == "cam-a" and got.row.state == "verified"
    assert [g.who for g in got.grants] == ["sue", "ivy"]
    assert [s.seq for s in got.segments] == [0, 1, 2] and got.segments[0].receipt is not None
    assert "log leaf" in got.witness and got.verdict.startswith("verified")
    assert entries(w, "viewed")[-1].actor == "account:ivy"
    granted = entries(w, "access_granted")[-1]
    assert granted.actor == "account:sue" and granted.detail["grantee"] == "ivy"
    z = cat.export(INV, "cam-a", "a1", tmp_path / "out")
    assert zipfile.is_zipfile(z)
    exported = entries(w, "exported")[-1]
    assert exported.actor == "account:ivy" and exported.detail["recording_id"] == "a1"
    assert exported.detail["decrypted"] is False
    # another investigator still cannot
    with pytest.raises(Forbidden):
        cat.detail(INV2, "cam-a", "a1")


def test_an_investigator_exports_an_ordinary_recording_and_a_supervisor_may_not(w, tmp_path):
    cat = catalog(w)
    z = cat.export(INV, "cam-b", "b1", tmp_path / "x")
    names = zipfile.ZipFile(z).namelist()
    assert any(n.endswith("report.json") for n in names)
    with pytest.raises(Forbidden):
        cat.export(SUP_B, "cam-b", "b1", tmp_path / "y")
    assert entries(w, "access_refused")[-1].detail["why"] == "bob lacks recordings.export"


def test_a_supervisor_marks_only_recordings_of_cameras_they_answer_for(w):
    cat = catalog(w)
    with pytest.raises(Forbidden):
        cat.mark_sensitive(SUP_B, "cam-a", "a1", "victim present")
    refused = entries(w, "access_refused")[-1]
    assert (
        refused.actor == "account:bob"
        and "does not answer for camera cam-a" in (refused.detail["why"])
    )
    assert not by_id(cat.list(INV))["a1"].sensitive
    with pytest.raises(Forbidden):  # nor may an investigator
        cat.mark_sensitive(INV, "cam-a", "a1", "victim present")


def test_a_supervisor_without_access_cannot_grant_themselves_or_others(w):
    cat = catalog(w)
    cat.mark_sensitive(SUP_A, "cam-a", "a1", "victim present")
    with pytest.raises(Forbidden):  # answers for cam-a too, but has no grant
        cat.grant(SUP_A2, "cam-a", "a1", "sam", "curious")
    with pytest.raises(CatalogError):
        cat.grant(SUP_A, "cam-a", "a1", "ivy", "   ")  # a reason is required
    with pytest.raises(CatalogError, match="no account"):
        cat.grant(SUP_A, "cam-a", "a1", "nobody", "a name nobody has")
    assert not cat.may_see(SUP_A2, "cam-a", "a1")


def test_lifting_the_mark_takes_two_different_supervisors(w):
    cat = catalog(w)
    cat.mark_sensitive(SUP_A, "cam-a", "a1", "victim present")
    cat.grant(SUP_A, "cam-a", "a1", "sam", "second supervisor of the officer")
    with pytest.raises(CatalogError):
        cat.approve_lift(SUP_A2, "cam-a", "a1")  # nobody asked yet
    cat.request_lift(SUP_A, "cam-a", "a1", "the victim consented")
    with pytest.raises(Forbidden):
        cat.approve_lift(SUP_A, "cam-a", "a1")  # the same supervisor
    assert entries(w, "access_refused")[-1].detail["attempt"] == "approve lift"
    assert by_id(cat.list(INV))["a1"].restricted
    cat.approve_lift(SUP_A2, "cam-a", "a1")
    row = by_id(cat.list(INV))["a1"]
    assert not row.restricted and not row.sensitive and row.device_id == "cam-a"
    lifted = entries(w, "sensitive_lifted")[-1]
    assert lifted.actor == "account:sam" and lifted.detail["requested_by"] == "sue"
    assert entries(w, "sensitive_lift_requested")[-1].actor == "account:sue"


def test_custody_rows_about_a_restricted_recording_are_redacted(w):
    cat = catalog(w)
    cat.mark_sensitive(SUP_A, "cam-a", "a1", "victim present")
    log = entries(w)
    received_a1 = [e for e in log if e.action == "received" and e.detail["recording_id"] == "a1"]
    for_ivy = cat.redactor(INV)
    shown = for_ivy(received_a1[0])
    assert (
        shown["redacted"]
        and shown["device_id"] is None
        and shown["detail"] == {"recording_id": "a1"}
    )
    # the camera as actor, and the hashes (a short detail's hash can be guessed back), go too
    assert shown["actor"] == "device (restricted)" and "cam-a" not in str(shown)
    assert shown["entry_hash"] is None and shown["signature"] is None
    mark = cat.redact_entry(INV, entries(w, "marked_sensitive")[-1])
    assert mark["redacted"] and "reason" not in mark["detail"]
    assert not cat.redact_entry(SUP_A, received_a1[0])["redacted"]
    other = [e for e in log if e.action == "received" and e.detail["recording_id"] == "b1"]
    assert not for_ivy(other[0])["redacted"]


def test_categories_come_from_the_policy_and_a_hold_is_set_and_released(w):
    cat = catalog(w)
    with pytest.raises(CatalogError, match="unknown category"):
        cat.set_categories(SUP_B, "cam-b", "b1", ["nonsense"])
    cat.set_categories(SUP_B, "cam-b", "b1", ["non-evidential"])
    row = by_id(cat.list(SUP_B))["b1"]
    assert row.categories == ["non-evidential"]
    assert row.retention_until_us == T0 + 31 * DAY  # 31 days from its receipt (the later)
    cat.set_hold(SUP_B, "cam-b", "b1", "complaint 17")
    row = by_id(cat.list(SUP_B))["b1"]
    assert row.legal_hold and row.retention_until_us is None
    with pytest.raises(CatalogError):
        cat.release_hold(SUP_B, "cam-a", "a2", "no hold there")
    cat.release_hold(SUP_B, "cam-b", "b1", "complaint closed")
    acts = [e.action for e in entries(w) if e.actor == "account:bob" and e.action != "viewed"]
    assert acts[-3:] == ["categorised", "legal_hold_set", "legal_hold_released"]
