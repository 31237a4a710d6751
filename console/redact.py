"""Custody entries as an account may see them: an entry about a recording restricted to
that account (sensitive, no grant) keeps only its index, time, actor, action and recording
id, with ``redacted`` True; an actor naming its camera (``device:<id>``) becomes ``device
(restricted)``, and its hashes and signature go too (a hash of a short detail can be guessed
back: the categories, the camera)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from console.catalog_db import Key
from console.recording_facts import all_recordings
from dock.store import LogEntry


def make_redactor(store: Any, restricted: set[Key]) -> Callable[[LogEntry], dict[str, Any]]:
    """Entries as dicts, redacted when about a recording in ``restricted`` (by its
    ``detail.recording_id``, or by the record its ``segment_id`` names)."""
    segs: dict[tuple[str, str], str] = {}
    for f in all_recordings(store) if restricted else []:
        if (f.device_id, f.recording_id) in restricted:
            dev = f.device_id
            segs |= {(dev, r.held.segment_id): f.recording_id for r in f.records}
            segs |= {(dev, g.segment_id): f.recording_id for g in f.retired}

    # by its id alone, whatever camera the entry names: an entry naming the recording with
    # another camera (one a probing account wrote: /custody?recording=R&camera=GUESS) must
    # not stay plain while the one naming its own camera is redacted (that would tell it)
    restricted_ids = {rec for _, rec in restricted}

    def redact(entry: LogEntry) -> dict[str, Any]:
        d = asdict(entry)
        rec = (entry.detail or {}).get("recording_id")
        if entry.segment_id and (entry.device_id, entry.segment_id) in segs:
            rec = segs[(entry.device_id or "", entry.segment_id)]
        if rec not in restricted_ids:
            return d | {"redacted": False}
        actor = "device (restricted)" if entry.actor.startswith("device:") else entry.actor
        return d | {
            "actor": actor,
            "prev_hash": None,
            "entry_hash": None,
            "signature": None,
            "device_id": None,
            "segment_id": None,
            "sha256": None,
            "detail": {"recording_id": rec},
            "redacted": True,
        }

    return redact
