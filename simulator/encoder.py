"""H.264 encoding for the simulated camera: libx264 through PyAV, set up like the Pi's
hardware encoder (fixed GOP, no B-frames, headers repeated on every keyframe), so packets
look like the ones picamera2's H264Encoder hands its outputs."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from base.formats import VideoFormat
from capture.packets import Packet, Stream


class H264Encoder:
    def __init__(self, fmt: VideoFormat, bitrate: int, gop: int, threads: int = 0) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = fmt.width, fmt.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 1_000_000)
        ctx.framerate = Fraction(fmt.fps)
        ctx.gop_size = gop
        ctx.max_b_frames = 0
        ctx.bit_rate = bitrate
        ctx.thread_count = threads
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": (
                f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1:"
                f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}"
            ),
        }
        ctx.open()
        self._ctx = ctx
        self.fmt = fmt
        self._frame_us = 1_000_000 // fmt.fps
        self._index_of_pts: dict[int, int] = {}

    def encode(self, yuv420: np.ndarray, pts_us: int, frame_index: int) -> list[Packet]:
        frame = av.VideoFrame.from_ndarray(yuv420, format="yuv420p")
        frame.pts = pts_us
        frame.time_base = self._ctx.time_base
        self._index_of_pts[pts_us] = frame_index
        return self._wrap(self._ctx.encode(frame))

    def flush(self) -> list[Packet]:
        return self._wrap(self._ctx.encode(None))

    def _wrap(self, packets) -> list[Packet]:
        out = []
        for p in packets:
            out.append(
                Packet(
                    Stream.VIDEO,
                    p.pts,
                    self._frame_us,
                    bool(p.is_keyframe),
                    bytes(p),
                    self._index_of_pts.pop(p.pts, None),
                )
            )
        return out
