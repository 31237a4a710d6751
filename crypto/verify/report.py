"""What the verifier reports: statuses, findings, and the per-segment, per-chunk and
per-recording reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

AUTHENTIC = "authentic"
MISSING = "missing"
ALTERED = "altered"
REORDERED = "reordered"
SUBSTITUTED = "substituted"
UNSIGNED = "unsigned"
DUPLICATED = "duplicated"
EQUIVOCATION = "equivocation"  # finding: two different signed records with one seq
TRAIL_MISSING = "trail_missing"  # finding: trail lines that should be there are not
TIME_INCONSISTENT = "time_inconsistent"  # finding: a claimed wall time outside its bounds
COUNTER_GAP = "counter_gap"  # finding: the TPM counted records that are not in the chain
COUNTER_REUSED = "counter_reused"  # finding: a counter at or below its predecessor's
COUNTER_FIELDS = ("counter", "prev_seq", "prev_counter")  # in a counter finding only


@dataclass
class Finding:
    kind: str  # altered, substituted, reordered, missing, unsigned, duplicate, gap,
    #            equivocation, trail_missing, extra (an exhibit's),
    #            chain_break, torn, truncated, cut_short, ended_early, misnamed, malformed,
    #            unrecognized, no_trail, undecryptable, time_inconsistent,
    #            counter_gap, counter_reused
    detail: str
    file: str | None = None
    recording_id: str | None = None
    segment_index: int | None = None
    seq: int | None = None
    # a counter finding's: the record's counter, and its predecessor in the chain given
    counter: int | None = None
    prev_seq: int | None = None
    prev_counter: int | None = None


@dataclass
class ChunkReport:
    chunk: int | None  # index in the manifest / trail (0 = init); None: not listed there
    position: int | None  # index in the stored file; None: not in it
    kind: str  # init | fragment | final | unknown
    status: str
    detail: str = ""


def worst_status(statuses: set[str]) -> str:
    """A segment's status from its chunks' that are not authentic: substituted before
    reordered before altered."""
    for status in (SUBSTITUTED, REORDERED):
        if status in statuses:
            return status
    return ALTERED


@dataclass(kw_only=True)
class SegmentReport:
    recording_id: str | None
    segment_index: int | None
    status: str
    file: str | None  # the stored file looked at
    manifest: str | None  # the manifest's file
    manifest_seq: int | None
    truncated: bool
    decrypted: bool | None  # None: no agency key given
    chunks: list[ChunkReport] = field(default_factory=list)
    detail: str = ""

    @classmethod
    def missing(
        cls,
        recording_id: str | None,
        segment_index: int | None,
        detail: str,
        chunks: list[ChunkReport] | None = None,
    ) -> SegmentReport:
        """A segment that is not here (neither its file nor its manifest)."""
        return cls(
            recording_id=recording_id,
            segment_index=segment_index,
            status=MISSING,
            file=None,
            manifest=None,
            manifest_seq=None,
            truncated=True,
            decrypted=None,
            chunks=chunks or [],
            detail=detail,
        )


@dataclass
class RecordingReport:
    recording_id: str
    status: str
    end_reason: str | None
    segments: list[int]
    # what the device's clock said, and the bounds the time records give (crypto/verify/
    # timecheck.py): recorded after T0 (a dock-signed sync), before T1 (an RFC 3161 time)
    wall_start_us: int | None = None
    wall_end_us: int | None = None
    wall_quality: str | None = None
    clock_sync_seq: int | None = None
    recorded_after_us: int | None = None
    recorded_before_us: int | None = None


@dataclass
class Report:
    ok: bool
    device_id: str | None
    key_id: str
    suite: str  # what the device key signs with: ed25519 (a key file), ecdsa-p256-sha256 (TPM)
    segments: list[SegmentReport]
    recordings: list[RecordingReport]
    findings: list[Finding]
    time_syncs: list[dict[str, Any]] = field(default_factory=list)  # the device's, checked
    log: dict[str, Any] | None = None  # what the witnessed log says (crypto/verify/log.py)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for f in out["findings"]:  # the counter fields belong to counter findings only
            if f["kind"] not in (COUNTER_GAP, COUNTER_REUSED):
                for k in COUNTER_FIELDS:
                    del f[k]
        if self.log is None:  # not checked: the report is as it was without a log
            del out["log"]
        return out

    def non_authentic(self) -> list[SegmentReport]:
        return [s for s in self.segments if s.status != AUTHENTIC]
