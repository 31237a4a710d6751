"""The pre-record ring buffer: encoded packets held in RAM only, thrown away unless a
recording starts.

Invariants (shared/DESIGN.md):
- packets are kept in arrival (capture) order;
- the oldest video packet kept is a keyframe;
- once ``duration_us`` of video has been captured, the buffer starts at the newest keyframe
  at or before ``newest - duration_us``, so it always covers at least the configured
  duration, and at most one GOP more;
- the total of the packets' bytes stays within ``max_bytes`` by dropping whole GOPs from the
  front (a single GOP larger than the budget is kept: the buffer never starts mid-GOP);
- each push costs amortised constant work; memory is the packets themselves plus a small
  constant per packet (one deque slot, plus one more per keyframe).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from base.packets import Packet, Stream


@dataclass(frozen=True, slots=True)
class RingStats:
    packets: int
    bytes: int
    video_span_us: int
    dropped_for_bytes: int


class RingBuffer:
    def __init__(self, duration_us: int, max_bytes: int, keep_audio: bool = True) -> None:
        if duration_us < 0:
            raise ValueError("duration_us must be >= 0")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.duration_us = duration_us
        self.max_bytes = max_bytes
        self.keep_audio = keep_audio
        self._packets: deque[Packet] = deque()
        # Absolute sequence numbers let keyframe positions survive pops from the front.
        self._first_seq = 0  # sequence number of self._packets[0]
        self._next_seq = 0
        self._keyframes: deque[tuple[int, int]] = deque()  # (seq, pts_us) of video keyframes
        self._bytes = 0
        self._newest_video_us: int | None = None
        self._dropped_for_bytes = 0

    # -- feeding -------------------------------------------------------------------------
    def push(self, packet: Packet) -> None:
        if packet.stream is Stream.VIDEO:
            if packet.keyframe:
                self._keyframes.append((self._next_seq, packet.pts_us))
            elif not self._keyframes:
                return  # never start mid-GOP: nothing to decode it against
            self._newest_video_us = packet.pts_us
        else:
            if not self.keep_audio or not self._keyframes:
                return
        self._packets.append(packet)
        self._next_seq += 1
        self._bytes += len(packet.data)
        self._trim()

    def _trim(self) -> None:
        kfs = self._keyframes
        if self._newest_video_us is not None:
            cutoff = self._newest_video_us - self.duration_us
            while len(kfs) >= 2 and kfs[1][1] <= cutoff:
                kfs.popleft()
        self._drop_before(kfs[0][0] if kfs else self._next_seq)
        # One GOP at a time: self._bytes only goes down as _drop_before pops the packets.
        while self._bytes > self.max_bytes and len(kfs) >= 2:
            kfs.popleft()
            self._dropped_for_bytes += 1
            self._drop_before(kfs[0][0])

    def _drop_before(self, seq: int) -> None:
        packets = self._packets
        while self._first_seq < seq:
            self._bytes -= len(packets.popleft().data)
            self._first_seq += 1

    # -- hand-over ---------------------------------------------------------------------------
    def drain(self) -> list[Packet]:
        """Hand every buffered packet over (oldest first) and empty the buffer.

        The caller feeds live packets to the writer from here on: since push and drain are
        called from one thread (or under one lock), no packet is lost or duplicated at the seam.
        """
        out = list(self._packets)
        self.clear()
        return out

    def clear(self) -> None:
        self._packets.clear()
        self._keyframes.clear()
        self._first_seq = self._next_seq
        self._bytes = 0
        self._newest_video_us = None

    # -- inspection ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._packets)

    @property
    def bytes(self) -> int:
        return self._bytes

    def oldest_video_us(self) -> int | None:
        return self._keyframes[0][1] if self._keyframes else None

    def stats(self) -> RingStats:
        oldest = self.oldest_video_us()
        span = (
            0
            if oldest is None or self._newest_video_us is None
            else (self._newest_video_us - oldest)
        )
        return RingStats(len(self._packets), self._bytes, span, self._dropped_for_bytes)

    def snapshot(self) -> list[Packet]:
        """A copy of the buffered packets, oldest first (for inspection and tests)."""
        return list(self._packets)
