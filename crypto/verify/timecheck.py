"""The time room: the device's time records and what they bound.

- every ``time_sync`` record's ``dock_signature`` is checked under the dock's key when the
  verifier has it (``valid``; ``invalid`` is a ``time_inconsistent`` finding), else it is
  reported ``unchecked`` (another dock's key id: ``other_dock``);
- a ``clock_step`` must apply a ``time_sync`` the chain holds as applied, by exactly its
  offset;
- a segment's wall end may not be before its wall start, nor its wall start before the
  ``dock_time_us`` of the last applied ``time_sync`` before it (before it in the chain, and,
  on the same boot, on the capture clock: ``capture_us <= start_us``);
- each recording is bounded: ``recorded_after_us`` (T0: that sync's dock time, for its first
  segment) and ``recorded_before_us`` (T1: given by the caller, from the RFC 3161 time of
  the first checkpoint that includes it: ``apply_upper_bounds``); ``recorded_between`` says
  it in words.

The dock's answer ``A`` that the dock signed is rebuilt from the record's fields exactly as
dock/routes/time.py builds it (sorted keys, no spaces, UTF-8).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from crypto.identity import key_id_of
from crypto.records import SignedRecord
from crypto.time_answer import recorded_time_answer, time_answer_bytes
from crypto.verify.report import TIME_INCONSISTENT, Finding, RecordingReport, Report
from crypto.verify.state import VerifierState


def utc(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(us / 1e6))


def recorded_between(rec: RecordingReport) -> str:
    """``recorded between T0 and T1 (UTC)``; with one bound only, ``recorded after T0`` or
    ``recorded before T1`` and why the other is missing; with none, that no trusted time
    bounds it."""
    t0, t1 = rec.recorded_after_us, rec.recorded_before_us
    no_t0 = "no dock-signed time sync before it"
    no_t1 = "no time-stamped checkpoint includes it"
    if t0 is not None and t1 is not None:
        return f"recorded between {utc(t0)} and {utc(t1)} (UTC)"
    if t0 is not None:
        return f"recorded after {utc(t0)} (UTC); no upper bound: {no_t1}"
    if t1 is not None:
        return f"recorded before {utc(t1)} (UTC); no lower bound: {no_t0}"
    return f"recording time not bounded by a trusted clock: {no_t0}, {no_t1}"


def wall_claim(rec: RecordingReport) -> str:
    """What the camera's clock said about a recording, and its quality."""
    if rec.wall_start_us is None or rec.wall_end_us is None:
        return "its camera's clock: no segment here"
    sync = f", time sync {rec.clock_sync_seq}" if rec.clock_sync_seq is not None else ""
    return (
        f"its camera's clock said {utc(rec.wall_start_us)} to {utc(rec.wall_end_us)} "
        f"({rec.wall_quality}{sync})"
    )


@dataclass(frozen=True)
class SegmentBound:
    """A segment's claimed wall end and the T1 of its own manifest (the RFC 3161 time of the
    first checkpoint that includes that manifest)."""

    recording_id: str
    segment_index: int | None
    seq: int
    file: str
    wall_end_us: int  # the latest wall time the manifest claims
    t1_us: int


def apply_upper_bounds(
    report: Report, bounds: Mapping[str, int], segments: Sequence[SegmentBound] = ()
) -> None:
    """Give each recording its upper bound T1 (µs, by recording id: the RFC 3161 time of the
    first checkpoint that includes its last record); a segment whose claimed wall end is after
    the T1 of its own manifest (``segments``), or a recording that claims a wall time after
    its T1, is ``time_inconsistent`` (one finding per segment; the recording's only when none
    of its segments was found)."""
    found: set[str] = set()
    for s in segments:
        if s.wall_end_us > s.t1_us:
            found.add(s.recording_id)
            report.findings.append(
                Finding(
                    TIME_INCONSISTENT,
                    f"segment {s.recording_id}/{s.segment_index} claims wall time "
                    f"{utc(s.wall_end_us)} UTC, after the time-stamped checkpoint that first "
                    f"includes its manifest ({utc(s.t1_us)} UTC)",
                    file=s.file,
                    recording_id=s.recording_id,
                    segment_index=s.segment_index,
                    seq=s.seq,
                )
            )
            report.ok = False
    for rec in report.recordings:
        t1 = bounds.get(rec.recording_id)
        if t1 is None:
            continue
        rec.recorded_before_us = t1
        claimed = max(
            (t for t in (rec.wall_start_us, rec.wall_end_us) if t is not None), default=None
        )
        if claimed is not None and claimed > t1 and rec.recording_id not in found:
            report.findings.append(
                Finding(
                    TIME_INCONSISTENT,
                    f"claims wall time {utc(claimed)} UTC, after the time-stamped checkpoint "
                    f"that includes it ({utc(t1)} UTC)",
                    recording_id=rec.recording_id,
                )
            )
            report.ok = False


class TimeRoom(VerifierState):
    dock_pk: bytes | None = None  # the dock's public key, when the verifier has it

    def _time_syncs(self) -> list[SignedRecord]:
        return [rec for seq, (_, rec) in sorted(self.chain.items()) if rec.type == "time_sync"]

    def _check_time(
        self, manifests: Mapping[tuple[str, int], SignedRecord], recordings: list[RecordingReport]
    ) -> list[dict[str, Any]]:
        """The time checks (module docstring); returns the report's ``time_syncs``."""
        syncs = self._time_syncs()
        listed = [self._check_sync(s) for s in syncs]
        self._check_steps()
        applied = [s for s in syncs if s.record["applied"]]
        after: dict[tuple[str, int], int | None] = {}
        for key, m in sorted(manifests.items(), key=lambda kv: kv[1].seq):
            after[key] = self._check_segment_time(m, applied)
        for rec in recordings:
            ms = sorted((m for k, m in manifests.items() if k[0] == rec.recording_id), key=_seq)
            if not ms:
                continue
            rec.wall_start_us = ms[0].record["wall_start_us"]
            rec.wall_end_us = ms[-1].record["wall_end_us"]
            rec.wall_quality = ms[0].record["wall_quality"]
            first = ms[0].record
            rec.clock_sync_seq = first.get("clock_sync_seq")
            rec.recorded_after_us = after[(first["recording_id"], first["segment_index"])]
        return listed

    def _check_sync(self, s: SignedRecord) -> dict[str, Any]:
        r = s.record
        status = "unchecked"
        if self.dock_pk is not None:
            if r["dock_key_id"] != key_id_of(self.dock_pk):
                status = "other_dock"
            else:
                try:
                    VerifyKey(self.dock_pk).verify(
                        time_answer_bytes(recorded_time_answer(r)),
                        bytes.fromhex(r["dock_signature"]),
                    )
                    status = "valid"
                except (BadSignatureError, ValueError):
                    status = "invalid"
                    self.find(
                        TIME_INCONSISTENT,
                        f"time sync {s.seq}: the dock's signature over its time answer does not "
                        "verify under the dock key given",
                        file=self._chain_name(s),
                        seq=s.seq,
                    )
        return {
            "seq": s.seq,
            "dock_time_us": r["dock_time_us"],
            "offset_us": r["offset_us"],
            "applied": r["applied"],
            "dock_key_id": r["dock_key_id"],
            "dock_signature": status,
            "tsa_token": r["tsa_token"] is not None,
        }

    def _check_steps(self) -> None:
        for seq, (name, rec) in sorted(self.chain.items()):
            if rec.type != "clock_step":
                continue
            r = rec.record
            sync = self.chain.get(r["time_sync_seq"])
            problem = None
            if sync is None:
                continue  # not here: the chain room reports what is missing
            sr = sync[1].record
            if sync[1].type != "time_sync" or r["time_sync_seq"] >= seq:
                problem = f"names record {r['time_sync_seq']}, not a time sync before it"
            elif not sr["applied"]:
                problem = f"applies time sync {r['time_sync_seq']}, which the device refused"
            elif r["to_wall_us"] - r["from_wall_us"] != sr["offset_us"]:
                problem = f"steps by another amount than time sync {r['time_sync_seq']} says"
            if problem:
                self.find(TIME_INCONSISTENT, f"clock step {seq}: {problem}", file=name, seq=seq)

    def _check_segment_time(self, m: SignedRecord, applied: list[SignedRecord]) -> int | None:
        """Check one segment's wall times; its lower bound T0 (None: no sync before it)."""
        r = m.record
        where = dict(
            file=self._chain_name(m),
            seq=m.seq,
            recording_id=r["recording_id"],
            segment_index=r["segment_index"],
        )
        if r["wall_end_us"] < r["wall_start_us"]:
            self.find(
                TIME_INCONSISTENT,
                f"segment {r['recording_id']}/{r['segment_index']} ends ({utc(r['wall_end_us'])}"
                f" UTC) before it starts ({utc(r['wall_start_us'])} UTC)",
                **where,
            )
        named = r.get("clock_sync_seq")
        if named is not None and named in self.chain and named not in {s.seq for s in applied}:
            self.find(
                TIME_INCONSISTENT,
                f"segment {r['recording_id']}/{r['segment_index']} says its clock carries "
                f"record {named}, which is not an applied time sync",
                **where,
            )
        before = [s for s in applied if s.seq < m.seq and s.record["capture_us"] <= r["start_us"]]
        if not before:
            return None
        t0: int = before[-1].record["dock_time_us"]
        if r["wall_start_us"] < t0:
            self.find(
                TIME_INCONSISTENT,
                f"segment {r['recording_id']}/{r['segment_index']} claims to start at "
                f"{utc(r['wall_start_us'])} UTC, before the dock-signed time sync "
                f"{before[-1].seq} that precedes it ({utc(t0)} UTC; clock "
                f"{r['wall_quality']})",
                **where,
            )
        return t0


def _seq(m: SignedRecord) -> int:
    return m.seq
