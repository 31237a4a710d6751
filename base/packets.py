"""The packet model: what every stage between the encoders and the segment writer passes on.

Times are integers in microseconds of *capture time*: the one clock of the pipeline
(sensor timestamps on the Pi, the virtual clock in the simulator). Nothing downstream of
the sources reads any other clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Stream(Enum):
    VIDEO = "video"
    AUDIO = "audio"


@dataclass(frozen=True, slots=True)
class Packet:
    """One encoded packet: an H.264 access unit or an AAC frame.

    ``pts_us`` is the capture time of the packet's first sample; ``duration_us`` how much
    capture time it covers. ``frame_index`` is the camera's frame counter for video (the
    simulator's test-pattern index; the sensor sequence number on the Pi), else ``None``.
    """

    stream: Stream
    pts_us: int
    duration_us: int
    keyframe: bool
    data: bytes
    frame_index: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def end_us(self) -> int:
        return self.pts_us + self.duration_us
