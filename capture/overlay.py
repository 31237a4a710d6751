"""The burned-in overlay: date, time and device id, drawn on every frame before encoding.

It draws on a luma (Y) plane or a BGR image, right-aligned in the bottom-right corner, white
text on a dark translucent box so it reads over a white wall as well as at night. It stays
inside the bottom-right quarter of the frame (the simulator's test pattern keeps the top
strip and the bottom-left quarter for its marks), shrinking the text on a small frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT = 235  # video-range white and black (what the encoder maps to full white/black)
DARK = 16
BOX_ALPHA = 180  # of 256: how much of the box is the dark colour (the rest is the scene)


def format_stamp(wall_us: int, device_id: str) -> tuple[str, str]:
    t = time.gmtime(wall_us // 1_000_000)
    ms = (wall_us // 1000) % 1000
    return (
        time.strftime("%Y-%m-%d", t) + " " + time.strftime("%H:%M:%S", t) + f".{ms:03d}Z",
        device_id,
    )


@dataclass(frozen=True)
class Layout:
    """Where the overlay goes in a frame: its box (x0, y0, x1, y1) and the text's
    scale, stroke and per-line baseline origins."""

    box: tuple[int, int, int, int]
    scale: float
    thick: int
    origins: tuple[tuple[int, int], ...]


def _thickness(scale: float) -> int:
    return max(1, int(round(scale * 2)))


def layout(width: int, height: int, lines: tuple[str, ...]) -> Layout:
    """The overlay's place in a ``width`` x ``height`` frame for ``lines`` of text."""
    scale = max(0.35, width / 1600)
    margin = max(2, int(round(8 * scale)))
    pad = max(2, int(round(6 * scale)))
    room = width - width // 2 - 2 * margin - 2 * pad  # the right half, inside the box
    while True:
        thick = _thickness(scale)
        sizes = [cv2.getTextSize(t, FONT, scale, thick) for t in lines]
        widest = max(w for (w, _h), _b in sizes)
        if widest <= room or scale < 0.1:
            break
        scale *= 0.9 * max(room, 1) / widest  # a small frame: stay in the bottom-right quarter
    text_w = max(w for (w, _h), _b in sizes)
    line_h = max(h + b for (_w, h), b in sizes) + pad
    x1, y1 = width - margin, height - margin
    x0 = max(width // 2, x1 - text_w - 2 * pad)
    y0 = max(height // 2, y1 - line_h * len(lines) - pad)
    origins = []
    y = y0 + pad
    for (w, h), _b in sizes:
        y += h
        origins.append((x1 - pad - w, y))  # right-aligned
        y += line_h - h
    return Layout((x0, y0, x1, y1), scale, thick, tuple(origins))


@dataclass(frozen=True)
class Overlay:
    device_id: str

    def draw(self, image: np.ndarray, wall_us: int) -> None:
        """Draw in place. ``image`` is HxW (luma) or HxWx3 (BGR)."""
        h, w = image.shape[:2]
        lines = format_stamp(wall_us, self.device_id)
        lay = layout(w, h, lines)
        x0, y0, x1, y1 = lay.box
        box = image[y0:y1, x0:x1]
        box[...] = ((box.astype(np.uint16) * (256 - BOX_ALPHA) + DARK * BOX_ALPHA) >> 8).astype(
            np.uint8
        )
        for text, org in zip(lines, lay.origins, strict=True):
            if lay.thick > 1:  # a dark outline keeps big text crisp; small text it would eat
                cv2.putText(
                    image,
                    text,
                    org,
                    FONT,
                    lay.scale,
                    _colour(image, DARK),
                    lay.thick + 2,
                    cv2.LINE_AA,
                )
            cv2.putText(
                image, text, org, FONT, lay.scale, _colour(image, TEXT), lay.thick, cv2.LINE_AA
            )


def _colour(image: np.ndarray, v: int) -> tuple[int, int, int] | int:
    return (v, v, v) if image.ndim == 3 else v
