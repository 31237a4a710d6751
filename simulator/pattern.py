"""The simulator's test pattern: a contract that tests outside the project read back from
the recorded files (shared/DESIGN.md, "Simulator").

- Frame-index strip: the top 32 pixel rows split into 32 equal cells; cell k is white when
  bit (31 - k) of the frame index is set (most significant bit on the left).
- Sync square: the first frame captured at or after each whole second of capture time shows
  a white square filling the bottom-left quarter (black there on every other frame).
- Audio: quiet noise, with a 10 ms 1 kHz tone burst starting at each whole second.

Drawing works on the luma plane (white 235, black 16: video range); reading works on any
decoded grey or BGR frame.
"""

from __future__ import annotations

import numpy as np

STRIP_ROWS = 32
CELLS = 32
WHITE = 235
BLACK = 16
SECOND_US = 1_000_000
BURST_US = 10_000
BURST_HZ = 1000


def cell_bounds(width: int, k: int) -> tuple[int, int]:
    return k * width // CELLS, (k + 1) * width // CELLS


def shows_sync_square(t_us: int, prev_t_us: int | None) -> bool:
    """Whether the frame captured at ``t_us`` (previous frame at ``prev_t_us``) is the first
    at or after a whole second."""
    if prev_t_us is None:
        return t_us % SECOND_US == 0
    # some whole second k with prev < k * 1 s <= t
    return t_us // SECOND_US > prev_t_us // SECOND_US


def draw_marks(luma: np.ndarray, frame_index: int, square: bool) -> None:
    """Draw the strip and the sync-square quarter onto a luma plane, in place."""
    h, w = luma.shape
    strip = luma[:STRIP_ROWS]
    for k in range(CELLS):
        x0, x1 = cell_bounds(w, k)
        strip[:, x0:x1] = WHITE if (frame_index >> (31 - k)) & 1 else BLACK
    luma[h // 2 :, : w // 2] = WHITE if square else BLACK


def draw_background(luma: np.ndarray, frame_index: int) -> None:
    """A moving scene, so the encoder has real work: a diagonal gradient that drifts."""
    h, w = luma.shape
    row = (np.arange(w, dtype=np.int32) + frame_index * 4) % 256
    luma[STRIP_ROWS:] = (row[None, :] // 2 + 64).astype(np.uint8)
    # a bright bar sweeping down the right half, like something moving through the scene
    y = STRIP_ROWS + (frame_index * 6) % max(1, h - STRIP_ROWS - 16)
    luma[y : y + 16, w // 2 :] = 200


def _luma(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        # BGR to luma, close enough for thresholding white against black
        return 0.114 * frame[..., 0] + 0.587 * frame[..., 1] + 0.299 * frame[..., 2]
    return frame


def read_frame_index(frame: np.ndarray) -> int:
    """Decode the frame-index strip of a decoded frame (grey or BGR)."""
    y = _luma(frame)
    w = y.shape[1]
    value = 0
    for k in range(CELLS):
        x0, x1 = cell_bounds(w, k)
        mx = (x0 + x1) // 2
        cell = y[8:24, max(x0, mx - 2) : min(x1, mx + 3)]
        if float(np.mean(cell)) > 128:
            value |= 1 << (31 - k)
    return value


def read_sync_square(frame: np.ndarray) -> bool:
    y = _luma(frame)
    h, w = y.shape[:2]
    q = y[h // 2 + h // 8 : h - h // 8, w // 8 : w // 2 - w // 8]
    return float(np.mean(q)) > 128


def audio_chunk(
    start_sample: int,
    count: int,
    sample_rate: int,
    origin_us: int,
    rng: np.random.Generator,
    noise_level: int = 60,
    burst_level: int = 12000,
) -> np.ndarray:
    """int16 mono samples ``[start_sample, start_sample + count)`` of the microphone whose
    sample 0 was captured at ``origin_us``: quiet noise plus the 1 kHz burst at each whole
    second of capture time."""
    n = np.arange(start_sample, start_sample + count, dtype=np.int64)
    t_us = origin_us + n * SECOND_US // sample_rate
    into_second = t_us % SECOND_US
    burst = into_second < BURST_US
    out = rng.normal(0.0, noise_level, count)
    if burst.any():
        phase = 2 * np.pi * BURST_HZ * (into_second[burst] / SECOND_US)
        out[burst] += burst_level * np.sin(phase)
    return np.clip(out, -32768, 32767).astype(np.int16)


def find_bursts(samples: np.ndarray, sample_rate: int, threshold: int = 3000) -> list[int]:
    """Sample offsets where a tone burst begins (first loud sample after >= 0.5 s quiet)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    onsets: list[int] = []
    for i in loud:
        if not onsets or i - onsets[-1] > sample_rate // 2:
            onsets.append(int(i))
    return onsets
