"""Stream formats: what the recorder, the segment writer and the encoders agree on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoFormat:
    width: int
    height: int
    fps: int


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int = 48_000
    channels: int = 1
    bitrate: int = 64_000
