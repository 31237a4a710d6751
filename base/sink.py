"""The segment sink interface: where the segment writer's blobs go.

A sink receives, per segment, one init blob and then fragments; ``write_fragment`` returns
only once the fragment is durable. ``close_segment`` publishes the finished segment under its
final name by atomic rename. The evidence sink (``crypto.evidence``) encrypts and signs;
``capture.sink.PlainFileSink`` writes playable MP4 files as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class SegmentInfo:
    recording_id: str
    segment_index: int
    start_us: int  # capture time of the segment's first video frame
    wall_start_us: int
    wall_quality: str  # "synced" | "unsynced"
    trigger: dict[str, Any] = field(default_factory=dict)
    clock_sync_seq: int | None = None  # the time_sync whose correction the wall carries


class SegmentSink(Protocol):
    def open_segment(self, info: SegmentInfo) -> None: ...
    def write_init(self, data: bytes) -> None: ...
    def write_fragment(self, data: bytes, first_us: int, end_us: int) -> None: ...
    def close_segment(self, end_us: int, wall_end_us: int) -> Path: ...
    def abort_segment(self) -> Path | None: ...
    def end_recording(self, recording_id: str, reason: str, end_us: int) -> None: ...
    def recover(self) -> list[Path]: ...
