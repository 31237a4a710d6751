"""The console's object lock (console/object_lock.py) without a real object store: the
decision (``wanted``/``merged``: never shorter, never weaker, a legal hold wins, kept →
COMPLIANCE) as properties, and the hooks over a fake lockable object store that behaves as
S3 Object Lock does (refuses to shorten a lock or delete a locked object). The same journeys
against a real Ceph RGW: tests/test_journey_s3_object_lock.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from console.object_lock import (
    COMPLIANCE,
    GOVERNANCE,
    OBJECT_LOCK_SET,
    SECOND_US,
    Lock,
    LockSettings,
    lockable,
    merged,
    wanted,
)
from console.retention import run_job
from console.retention_policy import DAY_US, RetentionPolicy
from dock.objects import DirectoryObjects
from tests.console_b_fixtures import DAY, SUP_A, SUP_B, T0, catalog, world

POLICY = RetentionPolicy(
    {"unclassified": "until_categorised", "non-evidential": 31, "evidential": "keep", "x": 0}
)
SETTINGS = LockSettings(keep_horizon_s=365 * 86_400, unclassified_s=31 * 86_400)
CATS = st.lists(st.sampled_from(["unclassified", "non-evidential", "evidential", "x", "odd"]))
US = st.integers(T0 - 400 * DAY, T0 + 400 * DAY)
MODES = st.sampled_from([None, GOVERNANCE, COMPLIANCE])
RANK = {None: 0, GOVERNANCE: 1, COMPLIANCE: 2}


@st.composite
def locks(draw):
    mode = draw(MODES)
    until = draw(US) // SECOND_US * SECOND_US if mode else None
    return Lock(mode, until, draw(st.booleans()))


@settings(max_examples=400)
@given(CATS, st.booleans(), US, US, locks())
@example(["evidential"], False, T0, T0, Lock(GOVERNANCE, T0 + 400 * DAY))  # upgrade, longer
@example(["non-evidential"], True, T0, T0, Lock(COMPLIANCE, T0 + 90 * DAY))
@example([], False, T0, T0 + DAY, Lock(COMPLIANCE, T0 + 3 * DAY))  # never weakened
def test_the_lock_is_never_shorter_or_weaker_and_a_second_pass_changes_nothing(
    cats, held, t_end, now, cur
):
    want = wanted(cats, held, POLICY, t_end, now, SETTINGS)
    new = merged(want, cur)
    assert RANK[new.mode] >= RANK[cur.mode]
    if cur.until_us is not None:
        assert new.until_us is not None and new.until_us >= cur.until_us
    assert new.legal_hold == held  # the hold as the catalog has it, set or released
    assert merged(want, new) == new  # applied: the next job has nothing to change
    if new.until_us is not None:
        assert new.until_us % SECOND_US == 0 or new.until_us == cur.until_us


@given(CATS, US, US, locks())
def test_kept_categories_are_compliance_for_the_horizon(cats, t_end, now, cur):
    cats = [*cats, "evidential"]
    new = merged(wanted(cats, False, POLICY, t_end, now, SETTINGS), cur)
    assert new.mode == COMPLIANCE
    assert new.until_us is not None and new.until_us >= now + SETTINGS.keep_horizon_s * 500_000


@given(US, US, locks())
def test_a_period_is_compliance_until_its_end(t_end, now, cur):
    new = merged(wanted(["non-evidential"], False, POLICY, t_end, now, SETTINGS), cur)
    end = t_end + 31 * DAY_US
    if end > now:
        assert new.mode == COMPLIANCE and new.until_us is not None and new.until_us >= end
    else:
        assert (new.mode, new.until_us) == (cur.mode, cur.until_us)  # nothing to add


@given(US, US, locks())
def test_unclassified_is_at_least_governance_while_it_stays_unclassified(t_end, now, cur):
    new = merged(wanted([], False, POLICY, t_end, now, SETTINGS), cur)
    assert new.mode in (GOVERNANCE, COMPLIANCE)
    assert new.until_us is not None and new.until_us >= now + SETTINGS.unclassified_s * 500_000


def test_renewal_waits_until_half_the_horizon_is_left():
    want = wanted(["evidential"], False, POLICY, T0, T0, SETTINGS)
    first = merged(want, Lock(GOVERNANCE, T0 + DAY, False))
    assert first == Lock(COMPLIANCE, T0 + 365 * DAY, False)
    later = wanted(["evidential"], False, POLICY, T0, T0 + 180 * DAY, SETTINGS)
    assert merged(later, first) == first  # more than half left: no change, no entry
    renew = wanted(["evidential"], False, POLICY, T0, T0 + 183 * DAY, SETTINGS)
    assert merged(renew, first) == Lock(COMPLIANCE, T0 + 548 * DAY, False)


# ------------------------------------------------------------------ the hooks, a fake store


@dataclass
class LockingObjects(DirectoryObjects):
    """Directory objects with S3 Object Lock's rules, on the test's clock (µs)."""

    clock: object = None
    locks: dict[str, Lock] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    fail: bool = False

    def __init__(self, root, clock, unclassified_s):
        super().__init__(root)
        self.clock, self.locks, self.calls, self.fail = clock, {}, [], False
        self.unclassified_s = unclassified_s

    def clock_s(self):
        """The object store's own clock, which its locks obey (S3Objects.clock_s)."""
        return self.clock() / SECOND_US

    def put_file(self, key, src, sha256=None, stored_digest=None, synced=False):
        super().put_file(key, src, synced=synced)
        self.locks[key] = Lock(GOVERNANCE, self.clock() + self.unclassified_s * SECOND_US)

    def lock_state(self, key):
        self.calls.append(("lock_state", key))
        if not self.exists(key):
            raise FileNotFoundError(key)
        lock = self.locks.get(key, Lock())
        until = None if lock.until_us is None else lock.until_us / SECOND_US
        return type("ObjectLock", (), {"mode": lock.mode, "retain_until_s": until,
                                       "legal_hold": lock.legal_hold})  # fmt: skip

    def set_lock(self, key, mode, retain_until_s):
        if self.fail:
            raise OSError("connection refused by 127.0.0.1:1")
        cur, until = self.locks.get(key, Lock()), round(retain_until_s * SECOND_US)
        if cur.mode == COMPLIANCE and (mode != COMPLIANCE or until < (cur.until_us or 0)):
            raise PermissionError("AccessDenied: compliance lock")
        self.calls.append(("set_lock", key, mode, until))
        self.locks[key] = Lock(mode, until, cur.legal_hold)

    def set_legal_hold(self, key, on):
        if self.fail:
            raise OSError("connection refused by 127.0.0.1:1")
        self.calls.append(("set_legal_hold", key, on))
        cur = self.locks.get(key, Lock())
        self.locks[key] = Lock(cur.mode, cur.until_us, on)

    def delete(self, key):
        if self.locks.get(key, Lock()).locked_at(self.clock()):
            raise PermissionError(f"AccessDenied: {key} is locked")
        super().delete(key)


@pytest.fixture
def w(tmp_path):
    """The catalog world (cam-a: a1, a2; cam-b: b1) over locking objects; unclassified
    objects are written with a 40-day governance lock."""
    from tests import console_b_fixtures as fx

    real = fx.open_dock

    def open_locking(root, clock):
        dock = real(root, clock=clock)
        store = dock.store
        store.objects = LockingObjects(store.objects.root, clock, 40 * 86_400)
        return dock

    fx.open_dock = open_locking
    try:
        got = world(tmp_path)
    finally:
        fx.open_dock = real
    yield got
    got.close()


def lock_entries(w):
    return [e for e in w.dock.store.custody_log(limit=10**6) if e.action == OBJECT_LOCK_SET]


def test_categorise_hold_and_release_lock_the_objects_each_once(w):
    objs = w.dock.store.objects
    assert lockable(w.dock.store)
    cat = catalog(w)
    assert cat.set_categories(SUP_A, "cam-a", "a2", ["evidential"]) is None
    (e,) = lock_entries(w)
    assert e.actor == "account:sue" and e.device_id == "cam-a"
    assert e.detail["recording_id"] == "a2" and e.detail["seqs"] == [3, 4, 5]
    assert e.detail["mode"] == COMPLIANCE and e.detail["reason"] == "categorised"
    assert e.detail["retain_until_us"] == T0 + 365 * DAY and e.detail["legal_hold"] is False
    a2 = [k for k, v in objs.locks.items() if v.mode == COMPLIANCE]
    assert len(a2) == 6  # blob and record of each of two segments and the end record
    run_job(w.console, None)  # nothing changed: no entry
    assert len(lock_entries(w)) == 1

    cat.set_hold(SUP_B, "cam-b", "b1", "complaint 17")
    hold = lock_entries(w)[-1]
    assert hold.detail["legal_hold"] is True and hold.detail["mode"] is None
    assert hold.detail["reason"] == "legal_hold_set"
    cat.release_hold(SUP_B, "cam-b", "b1", "closed")
    assert lock_entries(w)[-1].detail["legal_hold"] is False
    assert not any(v.legal_hold for v in objs.locks.values())


def test_a_due_recording_still_locked_by_the_object_store_is_not_deleted(w):
    """non-evidential for 31 days, but written with a 40-day governance lock."""
    catalog(w).set_categories(SUP_B, "cam-b", "b1", ["non-evidential"])
    w.clock.now = T0 + 35 * DAY
    job = run_job(w.console, None)
    assert job.deleted == [] and not job.errors
    (r,) = job.refused
    assert r["recording_id"] == "b1"
    assert r["why"] == "locked by the object store until 2027-02-24 08:00:00 UTC"
    assert not [e for e in w.dock.store.custody_log(limit=10**6) if e.action == "retention_deleted"]
    w.clock.now = T0 + 41 * DAY
    assert [d["recording_id"] for d in run_job(w.console, None).deleted] == ["b1"]


def test_a_delete_the_object_store_refuses_leaves_the_bytes_for_a_later_job(w, monkeypatch):
    catalog(w).set_categories(SUP_B, "cam-b", "b1", ["non-evidential"])
    w.clock.now = T0 + 41 * DAY
    import console.retention as retention

    monkeypatch.setattr(retention, "lock_blocker", lambda *a: None)  # a clock that disagrees
    objs = w.dock.store.objects
    for k in list(objs.locks):
        objs.locks[k] = Lock(GOVERNANCE, T0 + 50 * DAY)
    job = run_job(w.console, None)
    # the store asks the object store itself before it writes the deletion's entry
    assert "still locked by the object store" in job.errors[0], job.errors
    assert not [e for e in w.dock.store.custody_log(limit=10**6) if e.action == "retention_deleted"]
    assert w.dock.store.unfinished_retirements() == []
    w.clock.now = T0 + 51 * DAY
    again = run_job(w.console, None)
    assert not again.errors and [d["recording_id"] for d in again.deleted] == ["b1"]
    assert w.dock.store.unfinished_retirements() == []


def test_a_lock_known_to_satisfy_the_rules_is_asked_about_once_a_day(w):
    objs = w.dock.store.objects
    catalog(w).set_categories(SUP_A, "cam-a", "a2", ["evidential"])
    run_job(w.console, None)
    objs.calls.clear()
    w.clock.now += 3600 * 1_000_000
    run_job(w.console, None)  # an hour on: every record's lock is known and enough
    assert objs.calls == []
    w.clock.now += 86_400 * 1_000_000
    run_job(w.console, None)  # a day on: asked again (and nothing to change)
    assert {c[0] for c in objs.calls} == {"lock_state"}
    assert [e.detail["recording_id"] for e in lock_entries(w)] == ["a2"]
    objs.locks = {k: Lock(v.mode, v.until_us, True) for k, v in objs.locks.items()}
    w.clock.now += 2 * 86_400 * 1_000_000
    run_job(w.console, None)  # a legal hold nobody here set is released, and said
    assert not any(v.legal_hold for v in objs.locks.values())
    assert {e.detail["recording_id"] for e in lock_entries(w)[1:]} == {"a1", "a2", "b1"}


def test_a_failure_part_way_puts_what_was_done_on_record(w):
    objs = w.dock.store.objects
    real, n = objs.set_lock, []

    def third_fails(key, mode, until_s):
        n.append(key)
        if len(n) == 3:
            raise OSError("connection reset")
        real(key, mode, until_s)

    objs.set_lock = third_fails
    msg = catalog(w).set_categories(SUP_A, "cam-a", "a2", ["evidential"])
    assert msg is not None and "connection reset" in msg
    (e,) = lock_entries(w)
    assert e.detail["seqs"] == [3] and e.detail["mode"] == COMPLIANCE  # its blob and record
    objs.set_lock = real
    run_job(w.console, None)
    rest = lock_entries(w)[1:]
    assert [x.detail["seqs"] for x in rest if x.detail["recording_id"] == "a2"] == [[4, 5]]
    assert sum(v.mode == COMPLIANCE for v in objs.locks.values()) == 6


def test_an_object_store_failure_is_a_message_and_the_next_job_retries(w):
    objs = w.dock.store.objects
    objs.fail = True
    msg = catalog(w).set_categories(SUP_A, "cam-a", "a2", ["evidential"])
    assert msg is not None and "connection refused" in msg and "next retention job" in msg
    assert lock_entries(w) == []
    job = run_job(w.console, None)
    assert any("did not set the lock" in e for e in job.errors)
    objs.fail = False
    run_job(w.console, None)
    assert [e.detail["recording_id"] for e in lock_entries(w)] == ["a2"]
    assert lock_entries(w)[0].actor == "console"


def test_nothing_changes_for_a_directory_store(tmp_path):
    got = world(tmp_path)
    try:
        assert not lockable(got.dock.store)
        cat = catalog(got)
        assert cat.set_categories(SUP_A, "cam-a", "a2", ["evidential"]) is None
        cat.set_hold(SUP_B, "cam-b", "b1", "complaint")
        run_job(got.console, None)
        assert lock_entries(got) == []
    finally:
        got.close()


def test_the_page_says_when_the_object_store_did_not_lock(w):
    """The categories are saved (and in the custody log); the page says the lock is not
    set yet, in one line, no traceback; the next job sets it."""
    from console.testing import ConsoleHarness

    c = ConsoleHarness(w.root / "dock", dock=w.dock)
    c.add_account("bob", "supervisor", devices=("cam-b",))
    bob = c.client("bob")
    ref = next(
        m.group(1)
        for m in re.finditer(r'href="(/recordings/[0-9a-f]+)"><code>([^<]+)</code>',
                             bob.get("/recordings").text)
        if m.group(2) == "b1"
    )  # fmt: skip
    w.dock.store.objects.fail = True
    r = bob.post_form(f"{ref}/categories", {"category": ["evidential"]})
    assert r.status_code == 200
    assert "Categories saved. But the object store did not set the lock: connection refused" in (
        r.text
    )
    assert "next retention job tries again" in r.text and "Traceback" not in r.text
    assert [e.detail["categories"] for e in c.custody("categorised")] == [["evidential"]]
    w.dock.store.objects.fail = False
    r = bob.post_form(f"{ref}/hold", {"reason": "complaint 9"})
    assert r.status_code == 303  # locked: the usual redirect
    assert [e.detail["legal_hold"] for e in lock_entries(w)] == [True]
    c.console.db.close()


def test_the_retention_page_says_a_recording_is_still_locked(w):
    catalog(w).set_categories(SUP_B, "cam-b", "b1", ["non-evidential"])
    w.clock.now = T0 + 35 * DAY  # due under the policy; the 40-day write lock holds
    from console.testing import ConsoleHarness

    c = ConsoleHarness(w.root / "dock", dock=w.dock)
    c.add_account("bob", "supervisor", devices=("cam-b",))
    bob = c.client("bob")
    r = bob.post_form("/retention/run")
    assert r.status_code == 303
    page = bob.get(r.headers["location"]).text
    assert "0 recordings deleted, 1 still locked by the object store" in page
    assert "kept by a legal hold" not in page
    assert "(locked by the object store until 2027-02-24 08:00:00 UTC)" in page
    c.console.db.close()
