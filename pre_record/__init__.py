"""Pre-record ring buffer: RAM only, keyframe aligned, bounded by duration and bytes."""

from pre_record.ring import RingBuffer, RingStats

__all__ = ["RingBuffer", "RingStats"]
