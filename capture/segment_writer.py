"""The segment writer: packets in, fragmented MP4 segments out, through a sink.

- Packets arrive in capture order per stream; the writer interleaves the two streams by
  capture time (audio trails video by the AAC encoder's latency) so every packet lands in the
  segment whose time span holds it: nothing lost or repeated at a segment boundary.
- A segment starts on a video keyframe; a new one starts on the first keyframe at or after
  ``segment_us`` into the current one. One fragment per GOP.
- Every fragment reaches the sink (and so the disk) as soon as the muxer completes it.
- Segments share the recording's timeline: times in the MP4 run from the recording's first
  frame (``trigger["pre_record_start_us"]``, else the first segment's start), so segment N
  starts where N-1 ended, and a writer resumed after a full disk goes on from the same origin
  (the gap shows as a gap). Each segment is tagged with its wall-clock start and device id.
- A sink failure (a full disk) closes the open segment cleanly up to its last whole fragment
  and puts the writer in ``failed`` state; the recorder decides when to start again.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from base.clock import WallClock
from base.formats import AudioFormat, VideoFormat
from base.packets import Packet, Stream
from base.sink import SegmentInfo, SegmentSink
from capture.fmp4 import Blob, Fmp4Muxer, SegmentTags
from capture.h264 import parameter_sets

# Hold video at most this long waiting for audio to catch up before writing it anyway
# (a microphone that stalls must not stall the picture).
MAX_INTERLEAVE_US = 1_000_000


@dataclass
class SegmentRecord:
    index: int
    path: Path | None
    start_us: int
    end_us: int
    first_frame: int | None
    last_frame: int | None
    frames: int
    complete: bool  # False when it was cut short by a fault


@dataclass
class WriterStats:
    video_frames: int = 0
    audio_packets: int = 0
    late_audio_dropped: int = 0
    segments: list[SegmentRecord] = field(default_factory=list)


class SinkFailure(Exception):
    """The sink could not take a fragment (``__cause__`` holds the OSError)."""


class SegmentWriter:
    """Writes one recording. Create one per recording; feed with ``write``; ``finish``."""

    def __init__(
        self,
        *,
        sink: SegmentSink,
        recording_id: str,
        video: VideoFormat,
        audio: AudioFormat | None,
        audio_extradata: bytes = b"",
        segment_us: int,
        wall: WallClock,
        trigger: dict[str, int | None] | None = None,
        on_fragment: Callable[[SegmentRecord], None] | None = None,
        first_segment_index: int = 0,
        device_id: str = "",
    ) -> None:
        self.sink = sink
        self.recording_id = recording_id
        self.video = video
        self.audio = audio
        self.audio_extradata = audio_extradata
        self.segment_us = segment_us
        self.wall = wall
        self.trigger = trigger or {}
        self.on_fragment = on_fragment
        self.device_id = device_id
        origin = self.trigger.get("pre_record_start_us")
        self._origin_us: int | None = origin if isinstance(origin, int) else None
        self.stats = WriterStats()
        self.failed: OSError | None = None
        self._next_index = first_segment_index
        self._vq: deque[Packet] = deque()
        self._aq: deque[Packet] = deque()
        self._muxer: Fmp4Muxer | None = None
        self._seg: SegmentRecord | None = None
        self._basis: tuple[int, int, int | None] = (0, 0, None)  # the open segment's clock
        self._frag_first_us: int | None = None
        self._last_audio_us: int | None = None
        self._last_video_us: int | None = None

    # -- feeding --------------------------------------------------------------------------
    def write(self, packet: Packet) -> None:
        if self.failed is not None:
            return
        if packet.stream is Stream.VIDEO:
            self._vq.append(packet)
        elif self.audio is not None:
            self._aq.append(packet)
        with contextlib.suppress(SinkFailure):  # ``failed`` tells the recorder
            self._pump(final=False)

    def write_all(self, packets: list[Packet]) -> None:
        for p in packets:
            self.write(p)

    def finish(self, reason: str = "stopped") -> list[SegmentRecord]:
        """Write out everything pending, close the open segment, sign off the recording."""
        if self.failed is None:
            try:
                self._pump(final=True)
                self._close_segment()
            except SinkFailure:
                pass  # _fail has closed what could be kept; the recorder reports the fault
        end_us = self._last_video_us if self._last_video_us is not None else 0
        with contextlib.suppress(OSError):  # else recovery marks the recording cut short
            self.sink.end_recording(
                self.recording_id, "storage_fault" if self.failed else reason, end_us
            )
        return self.stats.segments

    # -- interleaving ---------------------------------------------------------------------------
    def _pump(self, final: bool) -> None:
        vq, aq = self._vq, self._aq
        try:
            while vq or aq:
                if vq and aq:
                    take_video = vq[0].pts_us <= aq[0].pts_us
                elif vq:
                    # Wait for audio to pass this frame's time, unless there is no audio,
                    # we're flushing, or audio is too far behind.
                    take_video = (
                        final
                        or self.audio is None
                        or vq[-1].pts_us - vq[0].pts_us >= MAX_INTERLEAVE_US
                    )
                    if not take_video:
                        return
                else:
                    take_video = False
                    if not final and self._last_video_us is None:
                        return  # audio before the first frame waits for it
                    if not final and aq[0].pts_us > (self._last_video_us or 0):
                        return  # might still precede a video frame not yet arrived
                self._emit(vq.popleft() if take_video else aq.popleft())
        except OSError as exc:
            self._fail(exc)
            raise SinkFailure from exc

    # -- segments -------------------------------------------------------------------------------
    def _emit(self, p: Packet) -> None:
        if p.stream is Stream.VIDEO:
            if self._seg is None:
                if not p.keyframe:
                    return  # a segment can only start on a keyframe
                self._open_segment(p)
            elif p.keyframe and p.pts_us - self._seg.start_us >= self.segment_us:
                self._close_segment()
                self._open_segment(p)
            self._last_video_us = p.pts_us
            seg = self._seg
            assert seg is not None
            if seg.first_frame is None:
                seg.first_frame = p.frame_index
            seg.last_frame = p.frame_index
            seg.frames += 1
            seg.end_us = p.end_us
            self.stats.video_frames += 1
        else:
            if self._seg is None or p.pts_us < self._seg.start_us:
                # audio from before the recording's first frame, or (a stalled microphone)
                # too late for the segment it belongs to
                if self._seg is not None:
                    self.stats.late_audio_dropped += 1
                return
            self._last_audio_us = p.pts_us
            self.stats.audio_packets += 1
        assert self._muxer is not None and self._seg is not None
        assert self._origin_us is not None
        self._deliver(self._muxer.add(p, p.pts_us - self._origin_us))

    def _open_segment(self, first: Packet) -> None:
        if self._origin_us is None or self._origin_us > first.pts_us:
            self._origin_us = first.pts_us  # the recording's timeline starts here
        info = SegmentInfo(
            recording_id=self.recording_id,
            segment_index=self._next_index,
            start_us=first.pts_us,
            wall_start_us=self.wall.wall_us(first.pts_us),
            wall_quality=self.wall.quality,
            clock_sync_seq=getattr(self.wall, "last_sync_seq", None),
            trigger=self.trigger,
        )
        tags = SegmentTags(
            info.wall_start_us, self.device_id, self.recording_id, info.segment_index
        )
        self._muxer = Fmp4Muxer(
            self.video, parameter_sets(first.data), self.audio, self.audio_extradata, tags
        )
        self._seg = SegmentRecord(
            self._next_index, None, first.pts_us, first.pts_us, None, None, 0, False
        )
        self._next_index += 1
        self._basis = (info.start_us, info.wall_start_us, info.clock_sync_seq)
        self.sink.open_segment(info)

    def _deliver(self, blobs: list[Blob]) -> None:
        seg = self._seg
        assert seg is not None
        for b in blobs:
            if b.kind == "init":
                self.sink.write_init(b.data)
            else:
                self.sink.write_fragment(b.data, self._frag_first_us or seg.start_us, seg.end_us)
                self._frag_first_us = seg.end_us
                if self.on_fragment:
                    self.on_fragment(seg)

    def _close_segment(self) -> None:
        if self._seg is None or self._muxer is None:
            return
        self._deliver(self._muxer.close())
        seg = self._seg
        seg.path = self.sink.close_segment(seg.end_us, self._wall_end(seg.end_us))
        seg.complete = True
        self.stats.segments.append(seg)
        self._seg = None
        self._muxer = None
        self._frag_first_us = None

    def _wall_end(self, end_us: int) -> int:
        """The segment's wall end on the clock it started on: a correction applied while it
        recorded (another ``clock_sync_seq``) moves the segments after it, not this one."""
        start_us, wall_start_us, sync_seq = self._basis
        if getattr(self.wall, "last_sync_seq", None) == sync_seq:
            return self.wall.wall_us(end_us)
        return wall_start_us + (end_us - start_us)

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        seg = self._seg
        try:
            path = self.sink.abort_segment()
        except OSError:
            path = None
        if seg is not None:
            seg.path = path
            self.stats.segments.append(seg)
        self._seg = None
        self._muxer = None
        self._vq.clear()
        self._aq.clear()

    @property
    def next_segment_index(self) -> int:
        return self._next_index
