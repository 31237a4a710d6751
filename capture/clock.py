"""The injected clocks live in ``base.clock`` (standard library only); kept here for the
many callers (simulator, bench, commands, tests) that import them from capture."""

from base.clock import Clock, MonotonicClock, OffsetWallClock, VirtualClock, WallClock

__all__ = ["Clock", "MonotonicClock", "OffsetWallClock", "VirtualClock", "WallClock"]
