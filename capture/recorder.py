"""The recorder state machine: booting -> buffering -> recording -> stopping -> buffering.

Packets from the camera and microphone arrive through ``on_packet`` (from any thread); the
officer's intents through ``press`` and ``stop``. While buffering, packets go to the RAM-only
pre-record ring; a press hands the ring over to a new segment writer and the live stream
follows in the same call under the same lock, so nothing is lost or repeated at the seam.

Faults (a full disk) never end a recording silently: the open segment is closed up to its
last whole fragment, a ``fault`` event goes out, packets keep flowing into the ring buffer,
and writing resumes on the next keyframe once space is back, with the ring's content.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from base.clock import WallClock
from base.formats import AudioFormat, VideoFormat
from base.packets import Packet, Stream
from base.sink import SegmentSink
from capture.segment_writer import SegmentRecord, SegmentWriter
from pre_record.ring import RingBuffer

# After a stop, wait at most this long (capture time) for the microphone to catch up.
STOP_GRACE_US = 500_000


class State(Enum):
    BOOTING = "booting"
    BUFFERING = "buffering"
    RECORDING = "recording"
    STOPPING = "stopping"


@dataclass(frozen=True)
class RecorderConfig:
    video: VideoFormat
    audio: AudioFormat | None
    pre_record_us: int
    pre_record_max_bytes: int
    audio_in_pre_record: bool
    segment_us: int
    low_space_bytes: int  # warn below this much free space
    resume_space_bytes: int  # after a full disk, write again once this much is free
    device_id: str = ""  # tagged into every segment's MP4


class EventKind(StrEnum):
    """What a recorder event says. A ``StrEnum``: it compares equal to, and prints as, its
    value (``"fault"``), which is what the simulator's event log and ``bwv sim`` show."""

    STATE = "state"  # ``state`` holds the new state
    RECORDING_STARTED = "recording_started"  # ``detail``: the recording id
    RECORDING_STOPPED = "recording_stopped"  # ``detail``: the recording id
    FRAGMENT_WRITTEN = "fragment_written"  # ``detail``: "<recording id> <segment index>"
    FAULT = "fault"  # ``source`` broke; ``detail`` says how
    FAULT_CLEARED = "fault_cleared"  # ``source`` works again (``detail``: its name)
    WARNING = "warning"  # ``source`` needs attention; ``detail`` says why
    RECOVERED = "recovered"  # at start, a segment a crash left open; ``detail``: its path


class FaultSource(StrEnum):
    """Where a recorder fault or warning comes from."""

    STORAGE = "storage"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    at_us: int
    detail: str = ""
    state: State | None = None  # set for ``EventKind.STATE``
    source: FaultSource | None = None  # set for faults, cleared faults and warnings


@dataclass
class Recording:
    id: str
    press_us: int
    press_frame: int | None
    pre_record_start_us: int | None = None
    writers: list[SegmentWriter] = field(default_factory=list)
    stop_us: int | None = None
    end_reason: str = ""
    faults: list[str] = field(default_factory=list)

    @property
    def segments(self) -> list[SegmentRecord]:
        return [s for w in self.writers for s in w.stats.segments]


class Recorder:
    def __init__(
        self,
        cfg: RecorderConfig,
        sink: SegmentSink,
        wall: WallClock,
        audio_extradata: bytes = b"",
        free_bytes: Callable[[], int] | None = None,
        on_event: Callable[[Event], None] | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.cfg = cfg
        self.sink = sink
        self.wall = wall
        self.audio_extradata = audio_extradata
        self._free_bytes = free_bytes
        self._on_event = on_event or (lambda e: None)
        self._new_id = new_id
        self.ring = RingBuffer(
            cfg.pre_record_us, cfg.pre_record_max_bytes, keep_audio=cfg.audio_in_pre_record
        )
        self.state = State.BOOTING
        self.recordings: list[Recording] = []
        self.current: Recording | None = None
        self._writer: SegmentWriter | None = None
        self._pending_press: int | None = None
        self._lock = threading.RLock()
        self._last_video: Packet | None = None
        self._low_space = False
        self._storage_fault = False

    # -- events ------------------------------------------------------------------------------
    def _emit(
        self, kind: EventKind, at_us: int, detail: str = "", source: FaultSource | None = None
    ) -> None:
        self._on_event(Event(kind, at_us, detail, source=source))

    def _set_state(self, state: State, at_us: int) -> None:
        if state is not self.state:
            self.state = state
            self._on_event(Event(EventKind.STATE, at_us, state.value, state=state))

    # -- packets -----------------------------------------------------------------------------
    def on_packet(self, p: Packet) -> None:
        with self._lock:
            if p.stream is Stream.VIDEO:
                self._last_video = p
                if self.state is State.BOOTING:
                    self._set_state(State.BUFFERING, p.pts_us)
                if p.keyframe:
                    self._check_space(p.pts_us)
                    if self._pending_press is not None and self.state is State.BUFFERING:
                        press, self._pending_press = self._pending_press, None
                        self._start(press)
                    elif self.current is not None and self._writer is None:
                        self._try_resume(p.pts_us)
            if self.state is State.STOPPING and self._writer is not None:
                self._stopping(p)
            elif self._writer is not None:
                self._writer.write(p)
                if self._writer.failed is not None:
                    self._storage_failed(p.pts_us)
            elif self.current is not None and not self.cfg.audio_in_pre_record:
                # a recording waiting for space keeps its audio too
                self.ring.keep_audio = True
                self.ring.push(p)
            else:
                self.ring.push(p)

    def _stopping(self, p: Packet) -> None:
        """Between the stop and the end of the recording: packets captured before the stop
        still belong to it (audio trails video by the encoder's latency); later ones start
        refilling the pre-record buffer."""
        assert self._writer is not None and self.current is not None
        stop_us = self.current.stop_us or 0
        if p.pts_us < stop_us:
            self._writer.write(p)
            if self._writer.failed is not None:
                self._storage_failed(p.pts_us)
                self._finish(p.pts_us)
                return
        else:
            self.ring.push(p)
        audio_done = self.cfg.audio is None or (p.stream is Stream.AUDIO and p.pts_us >= stop_us)
        if audio_done or (p.stream is Stream.VIDEO and p.pts_us >= stop_us + STOP_GRACE_US):
            self._finish(p.pts_us)

    # -- intents -----------------------------------------------------------------------------
    def press(self, at_us: int) -> bool:
        """Start recording. A press while booting is kept until frames flow. Returns True
        when the press started (or will start) a recording, False when already recording."""
        with self._lock:
            if self.state in (State.BOOTING, State.STOPPING) or (
                self.state is State.BUFFERING and not len(self.ring)
            ):
                self._pending_press = at_us
                return True
            if self.state is State.BUFFERING:
                self._start(at_us)
                return True
            return False

    def stop(self, at_us: int, reason: str = "stopped") -> Recording | None:
        """Stop recording at ``at_us``. The recording takes in what was captured before
        ``at_us`` and is finished as soon as the microphone has caught up (``stopping``);
        ``finish_now`` ends it at once (shutdown)."""
        with self._lock:
            rec = self.current
            if rec is None:
                self._pending_press = None
                return None
            if self.state is State.STOPPING:
                return rec
            rec.stop_us = at_us
            rec.end_reason = reason
            if self._writer is None:
                self._finish(at_us)
            else:
                self._set_state(State.STOPPING, at_us)
            return rec

    def finish_now(self, at_us: int, reason: str = "shutdown") -> Recording | None:
        with self._lock:
            rec = self.stop(at_us, reason)
            if rec is not None and self.current is rec:
                self._finish(at_us)
            return rec

    def _finish(self, at_us: int) -> None:
        rec = self.current
        assert rec is not None
        if self._writer is not None:
            self._writer.finish(rec.end_reason)
            if self._writer.failed is not None:
                rec.faults.append(f"storage: {self._writer.failed.strerror}")
        self._writer = None
        self.current = None
        self.ring.keep_audio = self.cfg.audio_in_pre_record
        self._emit(EventKind.RECORDING_STOPPED, at_us, rec.id)
        self._set_state(State.BUFFERING, at_us)

    # -- internals ---------------------------------------------------------------------------
    def _start(self, press_us: int) -> None:
        rec = Recording(
            id=self._new_id(),
            press_us=press_us,
            press_frame=self._last_video.frame_index if self._last_video else None,
        )
        rec.pre_record_start_us = self.ring.oldest_video_us()
        self.recordings.append(rec)
        self.current = rec
        self._set_state(State.RECORDING, press_us)
        self._emit(EventKind.RECORDING_STARTED, press_us, rec.id)
        self._open_writer(rec, self.ring.drain())

    def _open_writer(self, rec: Recording, backlog: list[Packet]) -> None:
        first_index = rec.writers[-1].next_segment_index if rec.writers else 0
        w = SegmentWriter(
            sink=self.sink,
            recording_id=rec.id,
            video=self.cfg.video,
            audio=self.cfg.audio,
            audio_extradata=self.audio_extradata,
            segment_us=self.cfg.segment_us,
            wall=self.wall,
            trigger={
                "press_us": rec.press_us,
                "pre_record_start_us": rec.pre_record_start_us,
                "press_frame": rec.press_frame,
            },
            first_segment_index=first_index,
            device_id=self.cfg.device_id,
            on_fragment=lambda seg: self._emit(
                EventKind.FRAGMENT_WRITTEN, seg.end_us, f"{rec.id} {seg.index}"
            ),
        )
        rec.writers.append(w)
        self._writer = w
        w.write_all(backlog)
        if w.failed is not None:
            self._storage_failed(backlog[-1].pts_us if backlog else 0)

    def _storage_failed(self, at_us: int) -> None:
        w = self._writer
        assert w is not None and w.failed is not None and self.current is not None
        self.current.faults.append(f"storage: {w.failed.strerror}")
        w.finish("storage_fault")
        self._writer = None
        self._storage_fault = True
        self._emit(
            EventKind.FAULT,
            at_us,
            f"storage: {w.failed.strerror}: recording paused, footage so far kept",
            FaultSource.STORAGE,
        )

    def _try_resume(self, at_us: int) -> None:
        if self._free_bytes is not None and self._free_bytes() < self.cfg.resume_space_bytes:
            return
        assert self.current is not None
        self._storage_fault = False
        self._emit(EventKind.FAULT_CLEARED, at_us, FaultSource.STORAGE.value, FaultSource.STORAGE)
        self._open_writer(self.current, self.ring.drain())

    def _check_space(self, at_us: int) -> None:
        if self._free_bytes is None:
            return
        low = self._free_bytes() < self.cfg.low_space_bytes
        if low and not self._low_space:
            self._emit(EventKind.WARNING, at_us, "storage low", FaultSource.STORAGE)
        self._low_space = low

    # -- inspection --------------------------------------------------------------------------
    @property
    def low_space(self) -> bool:
        return self._low_space

    @property
    def storage_fault(self) -> bool:
        return self._storage_fault

    def segment_paths(self) -> list[Path]:
        return [s.path for r in self.recordings for s in r.segments if s.path is not None]
