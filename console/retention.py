"""Retention: the recordings whose time is up (``due``) and the job that deletes them
(``run_job``), kept as a list of jobs the console shows (``jobs``).

A recording is due when its retention (console/retention_policy.py: the longest among its
categories) has run out and no legal hold is on it. The job deletes each of its records
through the store's ``retire_record``: the custody entry ``retention_deleted`` (record's
SHA-256, recording, seq, categories, retention days, job) is written before the bytes go,
the log's leaves stay, and the witness check explains the deletion instead of calling it
``withheld``. A held recording is never deleted: the job lists it as refused. A deletion a
crash cut short (entry written, bytes left) is finished by the next job.

On an S3 store (console/object_lock.py) each job first locks every recording's objects as
its rules ask (``object_lock_set`` entries), and a due recording whose objects the object
store still locks is not deleted: it is listed as refused, "locked by the object store until
...". A delete the object store refuses anyway leaves the record's bytes (its entry is
written): a later job finishes it, as after a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from console.catalog_db import Marks
from console.catalog_views import Forbidden, retention_end_us
from console.core import Account, Console
from console.object_lock import apply_all, lock_blocker
from console.recording_facts import RecordingFacts, all_recordings
from console.retention_policy import (
    KEEP,
    UNTIL_CATEGORISED,
    PolicyError,
    RetentionPolicy,
    load_policy,
)

__all__ = [
    "KEEP",
    "UNTIL_CATEGORISED",
    "DueDeletion",
    "JobRecord",
    "PolicyError",
    "RetentionPolicy",
    "due",
    "jobs",
    "load_policy",
    "run_job",
]

RUNNING_FOR_AT_MOST_US = 3600 * 1_000_000  # a job unfinished longer than this crashed

SCHEMA = """
CREATE TABLE IF NOT EXISTS retention_jobs(
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER, by TEXT NOT NULL, deleted TEXT NOT NULL DEFAULT '[]',
    refused TEXT NOT NULL DEFAULT '[]', errors TEXT NOT NULL DEFAULT '[]');
"""


@dataclass(frozen=True)
class DueDeletion:
    device_id: str
    recording_id: str
    categories: list[str]
    retention_days: int
    due_at_us: int
    records: int  # chain records the dock holds of it
    stored_bytes: int
    held: bool = False  # on legal hold: due, but not deleted

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class JobRecord:
    id: int
    started_at_us: int
    finished_at_us: int | None
    by: str  # account:<name>, or console (the scheduled job)
    deleted: list[dict[str, Any]] = field(default_factory=list)  # per recording
    refused: list[dict[str, Any]] = field(default_factory=list)  # held or locked recordings
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _policy(console: Console, policy: RetentionPolicy | None) -> RetentionPolicy:
    return policy if policy is not None else load_policy(console.store_dir)


def due(
    console: Console,
    now_us: int,
    policy: RetentionPolicy | None = None,
    *,
    include_held: bool = False,
) -> list[DueDeletion]:
    """The recordings whose retention has run out at ``now_us`` (oldest due first); held
    ones only with ``include_held`` (marked ``held``)."""
    pol = _policy(console, policy)
    marks = Marks(console.db)
    cats, holds = marks.categories(), marks.holds()
    out = []
    for f in all_recordings(console.dock.store):
        if not f.records:  # deleted (a deletion cut short still has records: due again)
            continue
        key = (f.device_id, f.recording_id)
        mine = pol.effective(cats.get(key, []))
        days = pol.retention_days(mine)
        until = pol.retention_until(mine, retention_end_us(f))
        if days is None or until is None or until > now_us:
            continue
        held = key in holds
        if held and not include_held:
            continue
        out.append(
            DueDeletion(
                f.device_id,
                f.recording_id,
                mine,
                days,
                until,
                len(f.records),
                f.summary.stored_bytes,
                held,
            )
        )
    return sorted(out, key=lambda d: (d.due_at_us, d.device_id, d.recording_id))


def run_job(
    console: Console, account: Account | None, policy: RetentionPolicy | None = None
) -> JobRecord:
    """Delete every recording due now (``account`` None: the console's scheduled job; an
    account needs ``retention.run``). The job's record: what was deleted, what a legal hold
    kept (refused), what failed. While another job runs, nothing is done: the record (id 0,
    not kept) says so in ``errors``."""
    if account is not None and not account.may("retention.run"):
        console.custody(
            account,
            "access_refused",
            detail={"attempt": "run retention", "why": f"{account.name} lacks retention.run"},
        )
        raise Forbidden(f"not allowed: {account.name} lacks retention.run")
    console.db.ensure(SCHEMA)
    now = console.now_us()
    by = account.actor if account is not None else "console"
    with console.db.tx() as c:
        running = c.execute(
            "SELECT id FROM retention_jobs WHERE finished_at_us IS NULL AND started_at_us > ?",
            (now - RUNNING_FOR_AT_MOST_US,),
        ).fetchone()
        if running is None:
            cur = c.execute("INSERT INTO retention_jobs(started_at_us, by) VALUES(?,?)", (now, by))
    if running is not None:  # the scheduled job and "run now" at once: one of them runs
        return JobRecord(0, now, now, by, errors=[f"retention job {running[0]} is running"])
    job = JobRecord(int(cur.lastrowid or 0), now, None, by)
    _finish_unfinished(console, job)
    pol = _policy(console, policy)
    for lock in apply_all(console, pol, account, job.id):
        if lock.error is not None:
            job.errors.append(f"{lock.device_id}/{lock.recording_id}: {lock.error}")
    holds = Marks(console.db)
    by_key = {(f.device_id, f.recording_id): f for f in all_recordings(console.dock.store)}
    for d in due(console, now, pol, include_held=True):
        if d.held or (d.device_id, d.recording_id) in holds.holds():
            job.refused.append(d.to_json() | {"why": "on legal hold"})
            continue
        facts = by_key[(d.device_id, d.recording_id)]
        try:
            locked = lock_blocker(console.dock.store, facts, console.now_us())
        except Exception as exc:  # noqa: BLE001 - the object store's failure is the record's
            job.errors.append(f"{d.device_id}/{d.recording_id}: object lock unknown: {exc}")
            continue
        if locked is not None:
            job.refused.append(d.to_json() | {"why": locked})
            continue
        _delete(console, job, d, facts, by)
    job.finished_at_us = console.now_us()
    _save(console, job)
    if job.deleted:
        from dock.translog import sync_quietly

        sync_quietly(console.dock.translog)  # a checkpoint that includes the entries
    return job


def _delete(
    console: Console, job: JobRecord, d: DueDeletion, facts: RecordingFacts, actor: str
) -> None:
    store = console.dock.store
    detail = {"categories": d.categories, "retention_days": d.retention_days, "job": job.id}
    entries = []
    try:
        for r in facts.records:  # segments and end records; a time sync is the camera's
            entry = store.retire_record(
                d.device_id, r.held.segment_id, actor, detail, console.now_us()
            )
            entries.append(entry.index)
    except PermissionError as exc:  # dock.objects_s3.ObjectLocked: the object store refused
        job.errors.append(
            f"{d.device_id}/{d.recording_id}: the object store refused to delete its bytes"
            f" ({exc}); its deletion is recorded and a later job finishes it"
        )
    except Exception as exc:  # noqa: BLE001 - one recording's failure is the job's record
        job.errors.append(f"{d.device_id}/{d.recording_id}: {exc}")
    if entries:
        job.deleted.append(d.to_json() | {"custody_entries": entries})


def _finish_unfinished(console: Console, job: JobRecord) -> None:
    """Deletions a crash cut short: the entry is written, the bytes are finished now."""
    store = console.dock.store
    for r in store.unfinished_retirements():
        try:
            store.retire_record(r.device_id, r.segment_id, job.by, {}, console.now_us())
        except Exception as exc:  # noqa: BLE001
            job.errors.append(f"{r.device_id}/{r.recording_id}: unfinished deletion: {exc}")


def _save(console: Console, job: JobRecord) -> None:
    with console.db.tx() as c:
        c.execute(
            "UPDATE retention_jobs SET finished_at_us=?, deleted=?, refused=?, errors=? WHERE id=?",
            (
                job.finished_at_us,
                json.dumps(job.deleted),
                json.dumps(job.refused),
                json.dumps(job.errors),
                job.id,
            ),
        )


def jobs(console: Console, limit: int = 50) -> list[JobRecord]:
    """The latest retention jobs, newest first."""
    console.db.ensure(SCHEMA)
    rows = console.db.query(
        "SELECT id, started_at_us, finished_at_us, by, deleted, refused, errors"
        " FROM retention_jobs ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        JobRecord(i, s, f, b, json.loads(d), json.loads(r), json.loads(e))
        for i, s, f, b, d, r, e in rows
    ]
