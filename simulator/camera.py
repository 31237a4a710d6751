"""The simulated camera: draws the test pattern and the burned-in overlay on each frame, at
the capture time the clock gives it, and encodes it to H.264 like the Pi's encoder does.

In real-time mode a frame whose time has passed by more than two frame intervals before the
camera got to it is dropped (its index is skipped), as a sensor whose consumer falls behind
drops frames. Every drop is counted.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from base.formats import VideoFormat
from capture.clock import WallClock
from capture.overlay import Overlay
from capture.packets import Packet
from simulator.encoder import H264Encoder
from simulator.pattern import draw_background, draw_marks, shows_sync_square


class SimCamera:
    def __init__(
        self,
        fmt: VideoFormat,
        bitrate: int,
        gop: int,
        overlay: Overlay,
        wall: WallClock,
        on_packet: Callable[[Packet], None],
        start_us: int = 0,
        drop_late: bool = False,
    ) -> None:
        self.fmt = fmt
        self.overlay = overlay
        self.wall = wall
        self.on_packet = on_packet
        self.start_us = start_us
        self.drop_late = drop_late
        self.encoder = H264Encoder(fmt, bitrate, gop)
        self.next_index = 0
        self.dropped = 0
        self.max_late_us = 0  # the latest a captured frame was captured, behind its time
        self._prev_t: int | None = None
        h, w = fmt.height, fmt.width
        self._yuv = np.full((h * 3 // 2, w), 128, dtype=np.uint8)

    def frame_time(self, index: int) -> int:
        return self.start_us + index * 1_000_000 // self.fmt.fps

    def index_at(self, t_us: int) -> int:
        """Index of the newest frame captured at or before ``t_us`` (-1 before the first)."""
        if t_us < self.start_us:
            return -1
        return (t_us - self.start_us) * self.fmt.fps // 1_000_000

    def poll(self, now_us: int) -> int:
        """Capture every frame due at or before ``now_us``. Returns how many were produced."""
        produced = 0
        interval = 1_000_000 // self.fmt.fps
        while (t := self.frame_time(self.next_index)) <= now_us:
            index = self.next_index
            self.next_index += 1
            square = shows_sync_square(t, self._prev_t)
            self._prev_t = t
            if self.drop_late and now_us - t > 2 * interval:
                self.dropped += 1
                continue
            self.max_late_us = max(self.max_late_us, now_us - t)
            self._capture(index, t, square)
            produced += 1
        return produced

    def _capture(self, index: int, t_us: int, square: bool) -> None:
        h = self.fmt.height
        luma = self._yuv[:h]
        draw_background(luma, index)
        draw_marks(luma, index, square)
        self.overlay.draw(luma, self.wall.wall_us(t_us))
        for p in self.encoder.encode(self._yuv, t_us, index):
            self.on_packet(p)
