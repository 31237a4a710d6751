"""Read the test pattern back out of recorded files: what an outside checker does.

``read_segments`` decodes the video and audio of MP4 files in order and returns, per video
frame, the frame index read from its strip, its presentation time and whether it shows the
sync square; and the audio burst onsets. Times are per-file (each segment starts at 0) plus
the running total of the previous segments' video durations.
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


def read_segments(paths: list[Path], with_audio: bool = True) -> Readback:
    rb = Readback()
    offset = 0.0
    for n, path in enumerate(paths):
        with av.open(str(path)) as c:
            vs = c.streams.video[0]
            last_t = 0.0
            frame_dur = 1.0 / float(vs.average_rate or 30)
            for frame in _frames(c, vs):
                t = float(frame.pts * vs.time_base)
                grey = frame.to_ndarray(format="gray")
                rb.frames.append(FrameSeen(read_frame_index(grey), offset + t,
                                           read_sync_square(grey), n))
                last_t = t
        if with_audio:
            with av.open(str(path)) as c:
                rb.audio_streams += len(c.streams.audio)
                if c.streams.audio:
                    a = c.streams.audio[0]
                    chunks, t0 = [], None
                    for frame in _frames(c, a):
                        if t0 is None:
                            t0 = float(frame.pts * a.time_base)
                        chunks.append(frame.to_ndarray()[0])
                    if chunks:
                        samples = (np.concatenate(chunks) * 32768).astype(np.int32)
                        rate = a.rate
                        for onset in find_bursts(samples, rate):
                            rb.burst_times.append(offset + t0 + onset / rate)
        dur = last_t + frame_dur
        rb.segment_durations.append(dur)
        offset += dur
    return rb
