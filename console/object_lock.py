"""The console's retention rules enforced by the object store (S3 Object Lock), for stores
whose objects can be locked (``lockable``: the store's ``objects`` has ``set_lock``, as
dock/objects_s3.py's ``S3Objects``); nothing changes for the directory store.

For each held record of a recording the objects (blob, record, set-aside unsigned bytes) get
the lock its categories and legal hold ask for (``wanted``), merged with the lock they have
so that nothing is ever shortened or weakened (``merged``):

- a category kept for ever (``keep``, or an unknown one) → COMPLIANCE until now + a
  renewable horizon (``keep_horizon_s``, one year), renewed once less than half is left;
- ``until_categorised`` (unclassified) → GOVERNANCE until now + ``unclassified_s`` (the lock
  every object is written with), renewed the same way as long as it stays unclassified;
- a period → COMPLIANCE until the period's end (when that is still to come);
- a legal hold → the object's legal hold on; released → off.

``apply_recording`` sets it for one recording (after a categorisation or a legal hold in the
console) and ``apply_all`` for every recording (each retention job, before it looks for
deletions). Each change is one custody entry ``object_lock_set`` per recording (none when
nothing changes; when the object store fails part way, for what it did). The weakest lock
of each record's objects is remembered (console database, ``object_locks``): a record whose
remembered lock satisfies the rules is asked about again only after ``recheck_s`` (a day),
so a job costs requests for what changes, not for every object. ``lock_blocker`` tells the
retention job when a due record's objects are still locked (always asked). Settings:
``[object_lock]`` in ``STORE/retention.toml``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.catalog_db import Marks
from console.catalog_views import retention_end_us
from console.core import Account, Console
from console.recording_facts import RecordingFacts, all_recordings, one_recording
from console.retention_policy import (
    DAY_US,
    KEEP,
    RETENTION_FILE,
    UNTIL_CATEGORISED,
    PolicyError,
    RetentionPolicy,
)
from crypto.verify.timecheck import utc
from dock.store import record_object_keys

OBJECT_LOCK_SET = "object_lock_set"
GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
_RANK = {GOVERNANCE: 1, COMPLIANCE: 2}
SECOND_US = 1_000_000


@dataclass(frozen=True)
class LockSettings:
    keep_horizon_s: int = 365 * 86_400  # a kept recording's COMPLIANCE horizon, renewed
    unclassified_s: int = 31 * 86_400  # an unclassified one's GOVERNANCE horizon, renewed
    recheck_s: int = 86_400  # a record's lock known this recently is not asked again


@dataclass(frozen=True)
class Lock:
    """An object's lock: retention ``mode`` (None: none) until ``until_us``; legal hold."""

    mode: str | None = None
    until_us: int | None = None
    legal_hold: bool = False

    def locked_at(self, now_us: int) -> bool:
        return self.legal_hold or (self.mode is not None and (self.until_us or 0) > now_us)


@dataclass(frozen=True)
class Wanted:
    """What the rules ask of a recording's objects: ``mode`` until ``until_us``, to be
    renewed when an object's lock ends before ``renew_below_us``; ``legal_hold``."""

    mode: str | None
    until_us: int | None
    renew_below_us: int | None
    legal_hold: bool


def _rank(mode: str | None) -> int:
    return _RANK.get(str(mode).upper(), 0) if mode else 0


def _ceil_s(us: int) -> int:
    """Whole seconds (up): the object store keeps seconds, and a lock read back must equal
    the one set, or every job would "extend" it again."""
    return -(-us // SECOND_US) * SECOND_US


def wanted(
    categories: Iterable[str],
    held: bool,
    policy: RetentionPolicy,
    t_end_us: int | None,
    now_us: int,
    settings: LockSettings,
) -> Wanted:
    """The lock a recording's rules ask for at ``now_us`` (``t_end_us``: what its retention
    counts from, console/catalog_views.retention_end_us)."""
    rules = [policy.periods.get(c, KEEP) for c in policy.effective(categories)]
    if KEEP in rules:
        horizon, mode = settings.keep_horizon_s, COMPLIANCE
    elif UNTIL_CATEGORISED in rules or t_end_us is None:
        horizon, mode = settings.unclassified_s, GOVERNANCE
    else:
        until = _ceil_s(t_end_us + max(int(r) for r in rules) * DAY_US)
        if until <= now_us:
            return Wanted(None, None, None, held)
        return Wanted(COMPLIANCE, until, until, held)
    h_us = horizon * SECOND_US
    return Wanted(mode, _ceil_s(now_us + h_us), now_us + h_us // 2, held)


def merged(want: Wanted, cur: Lock) -> Lock:
    """The object's lock after ``want``: never shorter, never weaker than ``cur``; the
    legal hold as wanted. Equal to ``cur`` when nothing needs to change."""
    mode, until = cur.mode, cur.until_us
    if want.mode is not None and want.until_us is not None:
        short = until is None or until < (want.renew_below_us or want.until_us)
        if short or _rank(cur.mode) < _rank(want.mode):
            mode = want.mode if _rank(want.mode) >= _rank(cur.mode) else cur.mode
            until = max(until or 0, want.until_us)
    return Lock(mode, until, want.legal_hold)


# ------------------------------------------------------------------ settings


def load_lock_settings(store_dir: Path, objects: Any = None) -> LockSettings:
    """``[object_lock]`` of ``STORE/retention.toml`` (``keep_horizon_s``,
    ``unclassified_s``, ``recheck_s``); unset: one year, the object store's own write-time
    lock (``settings.unclassified_lock_s``) or 31 days, one day."""
    s3 = getattr(getattr(objects, "settings", None), "unclassified_lock_s", None)
    base = LockSettings(unclassified_s=s3 if isinstance(s3, int) and s3 > 0 else 31 * 86_400)
    path = Path(store_dir) / RETENTION_FILE
    if not path.is_file():
        return base
    try:
        table = tomllib.loads(path.read_text()).get("object_lock", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the retention policy ({exc})") from None
    got = {}
    for name in ("keep_horizon_s", "unclassified_s", "recheck_s"):
        value = table.get(name, getattr(base, name)) if isinstance(table, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PolicyError(f"{path}: [object_lock] {name} must be a number of seconds")
        got[name] = value
    return LockSettings(**got)


# ------------------------------------------------------------------ the object store


def lockable(store: Any) -> bool:
    """Whether the store's objects can be locked (an S3 Object Lock bucket)."""
    return callable(getattr(getattr(store, "objects", None), "set_lock", None))


def lock_of(objects: Any, key: str) -> Lock | None:
    """The object's lock; None when there is no such object."""
    try:
        got = objects.lock_state(key)
    except FileNotFoundError:
        return None
    if got is None:
        return None
    until = got.retain_until_s
    return Lock(got.mode, None if until is None else round(until * SECOND_US), bool(got.legal_hold))


def lock_blocker(store: Any, facts: RecordingFacts, now_us: int) -> str | None:
    """Why the object store would refuse to delete the recording's records now ("locked by
    the object store until ..."), or None (not lockable, or nothing locked)."""
    if not lockable(store):
        return None
    until, hold = 0, False
    for r in facts.records:
        for key in record_object_keys(facts.device_id, r.held.segment_id):
            lock = lock_of(store.objects, key)
            if lock is None or not lock.locked_at(now_us):
                continue
            hold = hold or lock.legal_hold
            if lock.mode is not None and (lock.until_us or 0) > now_us:
                until = max(until, lock.until_us or 0)
    if hold:
        return "locked by the object store: a legal hold is on its objects"
    if until:
        return f"locked by the object store until {utc(until)} UTC"
    return None


# ------------------------------------------------------------------ applying


@dataclass(frozen=True)
class Applied:
    """One recording's lock change: the custody entry's index (None: nothing changed), or
    the object store's failure (``error``, one line)."""

    device_id: str
    recording_id: str
    entry_index: int | None = None
    error: str | None = None


Change = tuple[int, str, Lock, Lock]  # (seq, object key, its lock, the lock it must have)

SCHEMA = """
CREATE TABLE IF NOT EXISTS object_locks(
    device_id TEXT NOT NULL, segment_id TEXT NOT NULL, mode TEXT, until_us INTEGER,
    legal_hold INTEGER NOT NULL, checked_at_us INTEGER NOT NULL,
    PRIMARY KEY(device_id, segment_id));
"""


def _known(console: Console, device_id: str, now_us: int, recheck_s: int) -> dict[str, Lock]:
    """The weakest lock of each record's objects as last set or read (console database),
    when read within ``recheck_s``: a record whose known lock already satisfies the rules
    is not asked again (the object store is asked about each record once a day at most)."""
    console.db.ensure(SCHEMA)
    rows = console.db.query(
        "SELECT segment_id, mode, until_us, legal_hold FROM object_locks"
        " WHERE device_id=? AND checked_at_us>?",
        (device_id, now_us - recheck_s * SECOND_US),
    )
    return {seg: Lock(mode, until, bool(hold)) for seg, mode, until, hold in rows}


def _remember(
    console: Console, device_id: str, read: dict[str, dict[str, Lock]], forget: list[str], now: int
) -> None:
    """Keep the weakest lock of each record read (``forget``: records whose locks are not
    known any more)."""
    with console.db.tx() as c:
        for seg in forget:
            c.execute(
                "DELETE FROM object_locks WHERE device_id=? AND segment_id=?", (device_id, seg)
            )
        for seg, by_key in read.items():
            got = list(by_key.values())
            holds = {g.legal_hold for g in got}
            if len(holds) != 1:  # no object, or mixed legal holds: ask again next time
                continue
            c.execute(
                "INSERT OR REPLACE INTO object_locks VALUES(?,?,?,?,?,?)",
                (device_id, seg, min((g.mode for g in got), key=_rank),
                 min(g.until_us or 0 for g in got) or None, int(holds.pop()), now),
            )  # fmt: skip


def _plan(
    store: Any, facts: RecordingFacts, want: Wanted, known: dict[str, Lock]
) -> tuple[list[Change], dict[str, dict[str, Lock]]]:
    """The changes the recording's objects need, and the locks read (record -> object key
    -> lock); a record whose known lock needs nothing is not asked about."""
    out: list[Change] = []
    read: dict[str, dict[str, Lock]] = {}
    for r in facts.records:
        seg = r.held.segment_id
        if seg in known and merged(want, known[seg]) == known[seg]:
            continue
        read[seg] = {}
        for key in record_object_keys(facts.device_id, seg):
            cur = lock_of(store.objects, key)
            if cur is None:
                continue
            read[seg][key] = cur
            if (new := merged(want, cur)) != cur:
                out.append((r.seq, key, cur, new))
    return out, read


def _lock_for(plan: list[Change]) -> Lock:
    """One mode and time for every object whose retention changes (the strongest and
    latest: nothing is shortened), and the legal hold."""
    moved = [n for *_, c, n in plan if (n.mode, n.until_us) != (c.mode, c.until_us)]
    return Lock(
        max((n.mode for n in moved), key=_rank, default=None),
        max((n.until_us or 0 for n in moved), default=None),
        plan[0][3].legal_hold,
    )


def _set(objects: Any, plan: list[Change], lock: Lock, done: list[Change]) -> None:
    """Apply the plan; each change done is appended to ``done``."""
    for change in plan:
        _, key, cur, new = change
        if lock.mode and lock.until_us and (new.mode, new.until_us) != (cur.mode, cur.until_us):
            objects.set_lock(key, lock.mode, lock.until_us / SECOND_US)
        if new.legal_hold != cur.legal_hold:
            objects.set_legal_hold(key, new.legal_hold)
        done.append(change)


def _after(read: dict[str, dict[str, Lock]], done: list[Change], lock: Lock) -> None:
    """The locks read, as the changes done left them."""
    for _, key, cur, new in done:
        moved = (new.mode, new.until_us) != (cur.mode, cur.until_us)
        seg = key.split("/", 1)[1].split(".", 1)[0]
        read[seg][key] = Lock(lock.mode, lock.until_us, new.legal_hold) if moved else new


def apply_recording(
    console: Console,
    facts: RecordingFacts,
    categories: list[str],
    held: bool,
    policy: RetentionPolicy,
    actor: Account | None,
    reason: str,
    *,
    settings: LockSettings | None = None,
    job: int | None = None,
) -> Applied:
    """Lock the recording's objects as its rules ask; one ``object_lock_set`` entry when
    anything changed (also when the object store failed part way: what it did). A failure
    is ``error`` (the next job tries again)."""
    store: Any = console.dock.store
    if not lockable(store) or not facts.records:
        return Applied(facts.device_id, facts.recording_id)
    settings = settings or load_lock_settings(console.store_dir, store.objects)
    now = console.now_us()
    want = wanted(categories, held, policy, retention_end_us(facts), now, settings)
    known = _known(console, facts.device_id, now, settings.recheck_s)
    plan: list[Change] = []
    done: list[Change] = []
    error, lock = None, Lock()
    try:
        plan, read = _plan(store, facts, want, known)
        if plan:
            lock = _lock_for(plan)
            _set(store.objects, plan, lock, done)
        _after(read, done, lock)
        _remember(console, facts.device_id, read, [], now)
    except Exception as exc:  # noqa: BLE001 - the object store's failure is reported
        error = _one_line(exc)
        _remember(console, facts.device_id, {}, [r.held.segment_id for r in facts.records], now)
    entry = _entry(console, facts, actor, reason, job, done, lock) if done else None
    return Applied(facts.device_id, facts.recording_id, entry, error)


def _entry(
    console: Console,
    facts: RecordingFacts,
    actor: Account | None,
    reason: str,
    job: int | None,
    done: list[Change],
    lock: Lock,
) -> int:
    """The custody entry ``object_lock_set`` of the changes done; its index."""
    detail: dict[str, Any] = {
        "seqs": sorted({seq for seq, *_ in done}),
        "mode": lock.mode,
        "retain_until_us": lock.until_us,
        "legal_hold": lock.legal_hold,
        "reason": reason,
    }
    if job is not None:
        detail["job"] = job
    return console.custody(
        actor, OBJECT_LOCK_SET, recording_id=facts.recording_id, device_id=facts.device_id,
        detail=detail,
    ).index  # fmt: skip


def apply_one(
    console: Console,
    key: tuple[str, str],
    policy: RetentionPolicy,
    actor: Account | None,
    reason: str,
) -> Applied:
    """``apply_recording`` for one recording by its key, its marks read from the catalog."""
    if not lockable(console.dock.store):
        return Applied(*key)
    facts = one_recording(console.dock.store, *key)
    if facts is None:
        return Applied(*key)
    marks = Marks(console.db)
    cats = marks.categories().get(key, [])
    return apply_recording(console, facts, cats, key in marks.holds(), policy, actor, reason)


def apply_all(
    console: Console, policy: RetentionPolicy, actor: Account | None, job: int | None = None
) -> list[Applied]:
    """Every recording the dock holds: its lock as the rules ask now (a job run)."""
    store: Any = console.dock.store
    if not lockable(store):
        return []
    settings = load_lock_settings(console.store_dir, store.objects)
    marks = Marks(console.db)
    cats, holds = marks.categories(), marks.holds()
    out = []
    for f in all_recordings(store):
        key = (f.device_id, f.recording_id)
        got = apply_recording(
            console, f, cats.get(key, []), key in holds, policy, actor, "retention job",
            settings=settings, job=job,
        )  # fmt: skip
        if got.entry_index is not None or got.error is not None:
            out.append(got)
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"the object store did not set the lock: {text[:300]}"
