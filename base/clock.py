"""Injected clocks.

``Clock`` gives capture time (monotonic microseconds). ``WallClock`` gives wall-clock
time (Unix microseconds) with its quality, for the overlay and for manifests. The core only
ever receives one of these; it never calls ``time`` itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int: ...


class WallClock(Protocol):
    def wall_us(self, capture_us: int) -> int:
        """Wall-clock time (Unix epoch, microseconds) of the capture instant ``capture_us``."""
        ...

    @property
    def quality(self) -> str:
        """``"synced"`` once set from the dock, ``"unsynced"`` otherwise."""
        ...


@dataclass
class VirtualClock:
    """A clock that only moves when told to: the simulator's and the tests' time."""

    t_us: int = 0

    def now_us(self) -> int:
        return self.t_us

    def advance(self, delta_us: int) -> None:
        if delta_us < 0:
            raise ValueError("a clock cannot go backwards")
        self.t_us += delta_us

    def set(self, t_us: int) -> None:
        if t_us < self.t_us:
            raise ValueError("a clock cannot go backwards")
        self.t_us = t_us


class MonotonicClock:
    """Real capture time for the device and the simulator's real-time mode."""

    def __init__(self) -> None:
        self._origin = time.monotonic_ns()

    def now_us(self) -> int:
        return (time.monotonic_ns() - self._origin) // 1000


@dataclass
class OffsetWallClock:
    """Wall time = ``epoch_at_zero_us + capture_us``: capture zero anchored to a wall instant.

    ``resync`` re-anchors it (the dock tells the device its time); ``quality`` says whether
    that has happened, ``last_sync_seq`` which signed ``time_sync`` record (its chain seq) the
    correction it carries comes from (None: never synced since it was anchored), and
    ``refused`` why the last correction offered was not applied (None: it was, or none was
    offered): a device that keeps its clock against a dock's word says so.
    """

    epoch_at_zero_us: int
    quality: str = "unsynced"
    last_sync_seq: int | None = None
    refused: str | None = None

    def wall_us(self, capture_us: int) -> int:
        return self.epoch_at_zero_us + capture_us

    def resync(self, capture_us: int, true_wall_us: int, sync_seq: int | None = None) -> int:
        """Re-anchor on a trusted time; returns the offset that was corrected (µs)."""
        offset = true_wall_us - self.wall_us(capture_us)
        self.epoch_at_zero_us += offset
        self.quality = "synced"
        self.last_sync_seq = sync_seq
        self.refused = None
        return offset

    def refuse(self, why: str) -> None:
        """A correction was offered and not applied: the clock stays as it is."""
        self.refused = why
