"""What the dock holds of each recording, as the console shows it: its records (held, or
deleted under retention), its times ("recorded between T0 and T1"), its state from the
holdings (dock/holdings.py) and whether its last record is in a witnessed checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.verify.timecheck import utc
from dock.holdings import (
    DELETED,
    DeviceHoldings,
    HeldRecord,
    RecordingSummary,
    device_holdings,
    scan_recordings,
)
from dock.leaves import RECORD_DOMAIN


@dataclass
class RecordingFacts:
    device_id: str
    recording_id: str
    summary: RecordingSummary
    records: list[HeldRecord]  # held records of the recording, by seq
    retired: list[Any] = field(default_factory=list)  # dock.store_retire.RetiredRecord
    t0_us: int | None = None  # the camera's wall start of its first segment
    t1_us: int | None = None  # the camera's wall end of its last segment

    @property
    def state(self) -> str:
        return self.summary.state

    @property
    def deleted(self) -> bool:
        return self.summary.state == DELETED


def times_text(t0_us: int | None, t1_us: int | None) -> str:
    """``recorded between T0 and T1 (UTC)``, or what is missing (the camera's clock)."""
    if t0_us is not None and t1_us is not None:
        return f"recorded between {utc(t0_us)} and {utc(t1_us)} (UTC)"
    if t0_us is not None:
        return f"recorded from {utc(t0_us)} (UTC); its end is not at the dock"
    if t1_us is not None:
        return f"recorded until {utc(t1_us)} (UTC); its start is not at the dock"
    return "recording times unknown: no segment of it is at the dock"


def _leaf_record(store: Any, device_id: str, segment_id: str) -> dict[str, Any]:
    """A record's fields from its log leaf (the leaf stays when the record is deleted)."""
    idx = store.record_leaf_index(device_id, segment_id)
    if idx is None:
        return {}
    leaves = store.log_leaves(idx - 1, 1)
    if not leaves or not bytes(leaves[0].data).startswith(RECORD_DOMAIN):
        return {}
    try:
        rec = json.loads(bytes(leaves[0].data)[len(RECORD_DOMAIN) :])["record"]
    except (ValueError, KeyError, TypeError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _times(store: Any, facts: RecordingFacts) -> None:
    walls = [
        (r.seq, r.fields.raw.get("wall_start_us"), r.fields.raw.get("wall_end_us"))
        for r in facts.records
        if r.is_segment
    ]
    for g in facts.retired:
        if g.record_type == "manifest":
            raw = _leaf_record(store, g.device_id, g.segment_id)
            walls.append((g.seq, raw.get("wall_start_us"), raw.get("wall_end_us")))
    walls.sort(key=lambda w: w[0])
    if walls:
        facts.t0_us = walls[0][1] if isinstance(walls[0][1], int) else None
        facts.t1_us = walls[-1][2] if isinstance(walls[-1][2], int) else None


def _facts(store: Any, h: DeviceHoldings, s: RecordingSummary) -> RecordingFacts:
    f = RecordingFacts(
        h.device_id,
        s.recording_id,
        s,
        [r for r in h.records if r.fields.recording_id == s.recording_id],
        [g for g in h.retired if g.recording_id == s.recording_id],
    )
    _times(store, f)
    return f


def all_recordings(store: Any) -> list[RecordingFacts]:
    """Every recording the dock holds or deleted under retention, by device, chain order."""
    summaries, holdings = scan_recordings(store)
    return [_facts(store, holdings[s.device_id], s) for s in summaries]


def one_recording(store: Any, device_id: str, recording_id: str) -> RecordingFacts | None:
    if store.get_device(device_id) is None:
        return None
    h = device_holdings(store, device_id)
    from dock.holdings import summarise_recording

    s = summarise_recording(h, recording_id)
    return _facts(store, h, s) if s is not None else None


def witness_status(store_dir: Path, store: Any, facts: RecordingFacts) -> str:
    """Whether the recording's last record is in the dock's latest checkpoint, and who
    cosigned that checkpoint."""
    from dock.log_status import stored_log_status

    last = max([*facts.records], key=lambda r: r.seq, default=None)
    seg_id = last.held.segment_id if last else None
    if seg_id is None and facts.retired:
        seg_id = max(facts.retired, key=lambda g: g.seq).segment_id
    leaf = store.record_leaf_index(facts.device_id, seg_id) if seg_id else None
    if leaf is None:
        return "not in the dock's log"
    status = stored_log_status(Path(store_dir), store)
    size = status.get("checkpoint_size")
    if size is None or leaf >= size:
        return f"log leaf {leaf}: not yet in a checkpoint"
    names = [w["name"] for w in status.get("witnesses", []) if w.get("cosigned_latest")]
    if names:
        return f"witnessed: log leaf {leaf} is in checkpoint {size}, cosigned by {', '.join(names)}"
    earlier = _earlier_cosigned(Path(store_dir), store, leaf)
    if earlier is not None:  # witnessed then: a later checkpoint awaiting its cosignature
        return (
            f"witnessed: log leaf {leaf} is in checkpoint {earlier.size}, cosigned by "
            f"{', '.join(earlier.witnesses)}"
        )
    return f"log leaf {leaf} is in checkpoint {size}, not cosigned by a witness (unwitnessed)"


def _earlier_cosigned(store_dir: Path, store: Any, leaf: int) -> Any:
    from console.witnessed import first_cosigned_holding
    from dock.checkpoints import LogConfigError, checkpoint_store, load_log_config

    try:
        vkeys = tuple(w.vkey for w in load_log_config(store_dir).witnesses)
    except LogConfigError:
        return None
    cps = checkpoint_store(store_dir, store)
    return first_cosigned_holding(cps, vkeys, leaf) if vkeys else None
