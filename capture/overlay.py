"""The burned-in overlay: date, time and device id, drawn on every frame before encoding.

It draws on a luma (Y) plane or a BGR image, in the bottom-right quarter of the frame (the
simulator's test pattern keeps the top strip and the bottom-left quarter for its marks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np


def format_stamp(wall_us: int, device_id: str) -> tuple[str, str]:
    t = time.gmtime(wall_us // 1_000_000)
    ms = (wall_us // 1000) % 1000
    return (
        time.strftime("%Y-%m-%d", t) + " " + time.strftime("%H:%M:%S", t) + f".{ms:03d}Z",
        device_id,
    )


@dataclass(frozen=True)
class Overlay:
    device_id: str

    def draw(self, image: np.ndarray, wall_us: int) -> None:
        """Draw in place. ``image`` is HxW (luma) or HxWx3 (BGR)."""
        h, w = image.shape[:2]
        lines = format_stamp(wall_us, self.device_id)
        scale = max(0.35, w / 1600)
        thick = max(1, int(round(scale * 2)))
        line_h = int(30 * scale) + 6
        x0 = w // 2 + 8
        y = h - 8 - line_h * (len(lines) - 1)
        for text in lines:
            # a dark outline under white text reads on any background
            cv2.putText(image, text, (x0, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        _colour(image, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(image, text, (x0, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        _colour(image, 255), thick, cv2.LINE_AA)
            y += line_h


def _colour(image: np.ndarray, v: int):
    return (v, v, v) if image.ndim == 3 else v
