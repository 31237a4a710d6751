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
nothing changes). ``lock_blocker`` tells the retention job when a due record's objects are
still locked. Settings: ``[object_lock]`` in ``STORE/retention.toml``.
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
from dock.store import blob_key, manifest_key, unsigned_key

OBJECT_LOCK_SET = "object_lock_set"
GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"
_RANK = {GOVERNANCE: 1, COMPLIANCE: 2}
SECOND_US = 1_000_000


@dataclass(frozen=True)
class LockSettings:
    keep_horizon_s: int = 365 * 86_400  # a kept recording's COMPLIANCE horizon, renewed
    unclassified_s: int = 31 * 86_400  # an unclassified one's GOVERNANCE horizon, renewed


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
    ``unclassified_s``); unset: one year, and the object store's own write-time lock
    (``settings.unclassified_lock_s``) or 31 days."""
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
    for name in ("keep_horizon_s", "unclassified_s"):
        value = table.get(name, getattr(base, name)) if isinstance(table, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PolicyError(f"{path}: [object_lock] {name} must be a number of seconds")
        got[name] = value
    return LockSettings(**got)


# ------------------------------------------------------------------ the object store


def lockable(store: Any) -> bool:
    """Whether the store's objects can be locked (an S3 Object Lock bucket)."""
    return callable(getattr(getattr(store, "objects", None), "set_lock", None))


def record_keys(device_id: str, segment_id: str) -> list[str]:
    return [
        blob_key(device_id, segment_id),
        manifest_key(device_id, segment_id),
        unsigned_key(device_id, segment_id),
    ]


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
        for key in record_keys(facts.device_id, r.held.segment_id):
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


def _plan(store: Any, facts: RecordingFacts, want: Wanted) -> list[tuple[int, str, Lock, Lock]]:
    """(seq, key, current, merged) of each of the recording's objects that must change."""
    out = []
    for r in facts.records:
        for key in record_keys(facts.device_id, r.held.segment_id):
            cur = lock_of(store.objects, key)
            if cur is not None and (new := merged(want, cur)) != cur:
                out.append((r.seq, key, cur, new))
    return out


def _set(objects: Any, plan: list[tuple[int, str, Lock, Lock]]) -> Lock:
    """Apply the plan; the retention set (one mode and time for every object changed: the
    strongest and latest, so nothing is shortened) and the legal hold."""
    mode = max((n.mode for *_, c, n in plan if n.mode != c.mode or n.until_us != c.until_us),
               key=_rank, default=None)  # fmt: skip
    until = max(
        (n.until_us or 0 for *_, c, n in plan if n.mode != c.mode or n.until_us != c.until_us),
        default=None,
    )
    hold = plan[0][3].legal_hold
    for _, key, cur, new in plan:
        if mode is not None and until and (new.mode != cur.mode or new.until_us != cur.until_us):
            objects.set_lock(key, mode, until / SECOND_US)
        if new.legal_hold != cur.legal_hold:
            objects.set_legal_hold(key, new.legal_hold)
    return Lock(mode, until, hold)


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
    anything changed. An object-store failure is ``error`` (the next job tries again)."""
    store: Any = console.dock.store
    done = Applied(facts.device_id, facts.recording_id)
    if not lockable(store) or not facts.records:
        return done
    settings = settings or load_lock_settings(console.store_dir, store.objects)
    now = console.now_us()
    want = wanted(categories, held, policy, retention_end_us(facts), now, settings)
    try:
        plan = _plan(store, facts, want)
        if not plan:
            return done
        lock = _set(store.objects, plan)
    except Exception as exc:  # noqa: BLE001 - the object store's failure is reported
        return Applied(done.device_id, done.recording_id, error=_one_line(exc))
    detail: dict[str, Any] = {
        "seqs": sorted({seq for seq, *_ in plan}),
        "mode": lock.mode,
        "retain_until_us": lock.until_us,
        "legal_hold": lock.legal_hold,
        "reason": reason,
    }
    if job is not None:
        detail["job"] = job
    entry = console.custody(
        actor, OBJECT_LOCK_SET, recording_id=facts.recording_id, device_id=facts.device_id,
        detail=detail,
    )  # fmt: skip
    return Applied(done.device_id, done.recording_id, entry.index)


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
