"""Read the test pattern back out of recorded files: what an outside checker does.

``read_segments`` decodes the video and audio of MP4 files in order and returns, per video
frame, the frame index read from its strip, its presentation time and whether it shows the
sync square; and the audio burst onsets. Times are on one timeline, in seconds from the first
file's first frame: a recording's segments carry continuous timestamps (segment N starts
where N-1 ended), which are used as they are; a file whose timestamps start over (a file from
elsewhere, cut out on its own) is placed right after the one before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from simulator.pattern import find_bursts, read_frame_index, read_sync_square


@dataclass
class FrameSeen:
    index: int
    t: float  # seconds from the start of the first file
    square: bool
    segment: int


@dataclass
class Readback:
    frames: list[FrameSeen] = field(default_factory=list)
    burst_times: list[float] = field(default_factory=list)  # seconds, same timeline
    segment_durations: list[float] = field(default_factory=list)
    audio_streams: int = 0

    @property
    def indices(self) -> list[int]:
        return [f.index for f in self.frames]


def _frames(container, stream):
    """Decoded frames of ``stream``, stopping (as a player does) where a truncated file's
    data runs out."""
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError:
        return


def _video(path: Path) -> tuple[list[tuple[float, int, bool]], float]:
    """(time in the file, frame index, sync square) per decoded frame, and the nominal frame
    duration."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frame_dur = 1.0 / float(vs.average_rate or 30)
        frames = []
        for f in _frames(c, vs):
            grey = f.to_ndarray(format="gray")
            frames.append(
                (float(f.pts * vs.time_base), read_frame_index(grey), read_sync_square(grey))
            )
    return frames, frame_dur


def _audio_bursts(path: Path, rb: Readback) -> list[float]:
    """Burst onsets in the file's own time (seconds)."""
    with av.open(str(path)) as c:
        rb.audio_streams += len(c.streams.audio)
        if not c.streams.audio:
            return []
        a = c.streams.audio[0]
        chunks, t0 = [], None
        for frame in _frames(c, a):
            if t0 is None:
                t0 = float(frame.pts * a.time_base)
            chunks.append(frame.to_ndarray()[0])
        if not chunks or t0 is None:
            return []
        samples = (np.concatenate(chunks) * 32768).astype(np.int32)
        return [t0 + onset / a.rate for onset in find_bursts(samples, a.rate)]


def read_segments(paths: list[Path], with_audio: bool = True) -> Readback:
    rb = Readback()
    offset: float | None = None  # added to a file's own times
    prev_end = 0.0  # where the previous file ended, on the readback timeline
    for n, path in enumerate(paths):
        frames, frame_dur = _video(path)
        if frames:
            first_t = frames[0][0]
            if offset is None:
                offset = -first_t
            elif first_t + offset < prev_end - frame_dur / 2:
                offset = prev_end - first_t  # timestamps start over: place it after
        base = offset if offset is not None else prev_end
        rb.frames += [FrameSeen(index, base + t, square, n) for t, index, square in frames]
        if with_audio:
            rb.burst_times += [base + t for t in _audio_bursts(path, rb)]
        dur = frames[-1][0] - frames[0][0] + frame_dur if frames else 0.0
        rb.segment_durations.append(dur)
        if frames:
            prev_end = base + frames[-1][0] + frame_dur
    return rb
