"""What the catalog hands the pages (console/catalog.py decides who sees what): a listing's
``RecordingRow`` (id and times only when restricted), a search (``RecordingQuery``,
``matches``) and a recording in full (``RecordingDetail``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from console.catalog_db import Mark
from console.core import Console
from console.recording_facts import RecordingFacts, times_text, witness_status
from console.retention_policy import RetentionPolicy
from dock.store import LogEntry


class CatalogError(ValueError):
    """A request that cannot be done as asked (one line for the user)."""


class NotFound(CatalogError):
    """No such recording."""


class Forbidden(Exception):
    """A refusal; it is already in the custody log (``access_refused``) when raised."""


@dataclass(frozen=True)
class RecordingQuery:
    device_id: str | None = None
    category: str | None = None
    status: str | None = None  # a holdings state: verified, gap, incomplete, ... deleted
    date_from_us: int | None = None
    date_to_us: int | None = None
    text: str | None = None  # in the recording id (and, when visible, camera and categories)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


@dataclass
class RecordingRow:
    ref: str  # an opaque name for links (never names the camera)
    recording_id: str
    t0_us: int | None
    t1_us: int | None
    times_text: str
    sensitive: bool
    restricted: bool  # True: this account may see only the id and times; the rest is None
    device_id: str | None
    segments: int | None
    stored_bytes: int | None
    state: str | None
    categories: list[str] | None  # as set (none set: the policy's default category)
    legal_hold: bool | None
    retention_until_us: int | None  # when retention may delete it; None: kept


def retention_end_us(facts: RecordingFacts) -> int | None:
    """What retention counts from: the later of the camera's end time and the dock's
    receipt of the last record (a camera clock set back never shortens it)."""
    received = [r.held.received_at_us for r in facts.records]
    received += [g.received_at_us for g in facts.retired]
    times = [t for t in (facts.t1_us, max(received, default=None)) if t is not None]
    return max(times, default=None)


def build_row(
    facts: RecordingFacts,
    ref: str,
    categories: list[str],
    sensitive: bool,
    restricted: bool,
    hold: bool,
    policy: RetentionPolicy,
) -> RecordingRow:
    row = RecordingRow(
        ref,
        facts.recording_id,
        facts.t0_us,
        facts.t1_us,
        times_text(facts.t0_us, facts.t1_us),
        sensitive,
        restricted,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    if restricted:
        return row
    row.device_id = facts.device_id
    row.segments = facts.summary.segments
    row.stored_bytes = facts.summary.stored_bytes
    row.state = facts.state
    row.categories = policy.effective(categories)
    row.legal_hold = hold
    if not hold and not facts.deleted:
        row.retention_until_us = policy.retention_until(categories, retention_end_us(facts))
    return row


def matches(row: RecordingRow, q: RecordingQuery) -> bool:
    """Whether the row answers the search. A restricted row answers only by its id and its
    times: a search by camera, category or status never finds it."""
    if q.device_id and row.device_id != q.device_id:
        return False
    if q.category and q.category not in (row.categories or []):
        return False
    if q.status and row.state != q.status:
        return False
    if q.date_from_us is not None and (row.t1_us is None or row.t1_us < q.date_from_us):
        return False
    if q.date_to_us is not None and (row.t0_us is None or row.t0_us > q.date_to_us):
        return False
    if q.text:
        words = [row.recording_id]
        if not row.restricted:
            words += [row.device_id or "", *(row.categories or [])]
        if not any(q.text.lower() in w.lower() for w in words):
            return False
    return True


@dataclass
class SegmentInfo:
    seq: int
    record_type: str  # manifest (a segment), end, time_sync ...
    index: int | None  # the segment's index in the recording
    size: int
    received_at_us: int
    receipt: dict[str, Any] | None
    deleted: bool = False  # deleted under retention


@dataclass
class RecordingDetail:
    row: RecordingRow
    segments: list[SegmentInfo]
    verdict: str  # the holdings' state and why
    witness: str  # whether its last record is in a witnessed checkpoint
    custody: list[LogEntry]  # entries about the recording or its records
    sensitive: Mark | None = None
    grants: list[Mark] = field(default_factory=list)
    lift_request: Mark | None = None
    hold: Mark | None = None
    retention: str = ""  # the policy's rule in words


def _segments(console: Console, facts: RecordingFacts) -> list[SegmentInfo]:
    store = console.dock.store
    out = []
    for r in facts.records:
        state = store.upload_state(facts.device_id, r.held.segment_id)
        receipt = state.receipt.to_json() if state and state.receipt else None
        out.append(
            SegmentInfo(
                r.seq,
                r.fields.record_type,
                r.fields.segment_index,
                r.held.stored_size,
                r.held.received_at_us,
                receipt,
            )
        )
    for g in facts.retired:
        out.append(
            SegmentInfo(
                g.seq, g.record_type, g.segment_index, g.stored_size, g.received_at_us, None, True
            )
        )
    return sorted(out, key=lambda s: s.seq)


def custody_about(console: Console, facts: RecordingFacts) -> list[LogEntry]:
    segs = {r.held.segment_id for r in facts.records} | {g.segment_id for g in facts.retired}
    out = []
    for e in console.dock.store.custody_log(limit=10**9):
        about = (e.detail or {}).get("recording_id") == facts.recording_id and e.device_id in (
            facts.device_id,
            None,
        )
        if about or (e.device_id == facts.device_id and e.segment_id in segs):
            out.append(e)
    return out


def build_detail(
    console: Console,
    facts: RecordingFacts,
    ref: str,
    categories: list[str],
    sensitive: Mark | None,
    hold: Mark | None,
    grants: list[Mark],
    lift: Mark | None,
    policy: RetentionPolicy,
) -> RecordingDetail:
    row = build_row(facts, ref, categories, sensitive is not None, False, hold is not None, policy)
    rules = [f"{c}: {policy.describe(c)}" for c in policy.effective(categories)]
    return RecordingDetail(
        row=row,
        segments=_segments(console, facts),
        verdict=f"{facts.summary.state}: {facts.summary.detail}",
        witness=witness_status(console.store_dir, console.dock.store, facts),
        custody=custody_about(console, facts),
        sensitive=sensitive,
        grants=grants,
        lift_request=lift,
        hold=hold,
        retention="; ".join(rules) + ("; on legal hold: kept" if hold else ""),
    )
