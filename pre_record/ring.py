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
- each push costs amortised constant work; memory is the payloads plus a small constant per
  packet (one deque slot and three 8-byte words, plus a tuple per keyframe).

The buffer keeps a packet's fields, not the ``Packet`` object: the payload (the very bytes
object pushed, never copied) in a deque, the rest as 64-bit words in an ``array`` (so
``pts_us`` and ``duration_us`` must fit in 64 bits, ``frame_index`` in 60). ``drain()`` and
``snapshot()`` rebuild Packets equal to the ones pushed. An AAC packet carries ~170 bytes,
so a Packet object and its ints would cost almost as much as its payload.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass

from base.packets import Packet, Stream

_VIDEO, _AUDIO = Stream.VIDEO, Stream.AUDIO
# Per packet, _FIELDS words in the meta column: pts_us, duration_us, and a flags word with
# the frame index (if any) above _FLAG_BITS bits of flags.
_FIELDS = 3
_IS_VIDEO, _IS_KEY, _HAS_FRAME = 1, 2, 4
_FLAG_BITS = 3
_NEVER = 1 << 63  # beyond any pts_us the meta column can hold


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
        self._keyframes: deque[tuple[int, int]] = deque()  # (seq, pts_us) of video keyframes
        self.duration_us = duration_us  # (sets self._trim_at)
        self.max_bytes = max_bytes
        self.keep_audio = keep_audio
        # Columns, not Packet objects: the payloads in one deque, the rest as machine words
        # (_FIELDS per packet from self._head on), rebuilt into Packets by drain().
        self._data: deque[bytes] = deque()
        self._meta = array("q")
        self._head = 0  # index in self._meta of the oldest packet's first field
        # Absolute sequence numbers let keyframe positions survive pops from the front.
        self._first_seq = 0  # sequence number of self._data[0]; the next is + len(_data)
        self._bytes = 0
        self._newest_video_us: int | None = None
        self._dropped_for_bytes = 0

    @property
    def duration_us(self) -> int:
        return self._duration_us

    @duration_us.setter
    def duration_us(self, value: int) -> None:
        self._duration_us = value
        self._set_trim_at()

    def _set_trim_at(self) -> None:
        """The newest video time from which the cutoff passes the second keyframe."""
        kfs = self._keyframes
        self._trim_at = kfs[1][1] + self._duration_us if len(kfs) >= 2 else _NEVER

    # -- feeding -------------------------------------------------------------------------
    def push(self, packet: Packet) -> None:
        pts = packet.pts_us
        if packet.stream is _VIDEO:
            kfs = self._keyframes
            if packet.keyframe:
                kfs.append((self._first_seq + len(self._data), pts))
                if len(kfs) == 2:
                    self._trim_at = pts + self._duration_us
                flags = _IS_VIDEO | _IS_KEY
            elif not kfs:
                return  # never start mid-GOP: nothing to decode it against
            else:
                flags = _IS_VIDEO
            self._newest_video_us = pts
            # Only a video packet moves the cutoff (past the second keyframe: trim).
            trim = pts >= self._trim_at
        elif not self.keep_audio or not self._keyframes:
            return
        else:
            flags = _IS_KEY if packet.keyframe else 0
            trim = False
        frame = packet.frame_index
        data = packet.data
        self._data.append(data)
        self._meta.extend(
            (
                pts,
                packet.duration_us,
                flags if frame is None else frame << _FLAG_BITS | flags | _HAS_FRAME,
            )
        )
        self._bytes += len(data)
        if trim or self._bytes > self.max_bytes:
            self._trim()

    def _trim(self) -> None:
        kfs = self._keyframes
        if self._newest_video_us is not None:
            cutoff = self._newest_video_us - self._duration_us
            while len(kfs) >= 2 and kfs[1][1] <= cutoff:
                kfs.popleft()
        self._drop_before(kfs[0][0] if kfs else self._first_seq + len(self._data))
        # One GOP at a time: self._bytes only goes down as _drop_before pops the packets.
        while self._bytes > self.max_bytes and len(kfs) >= 2:
            kfs.popleft()
            self._dropped_for_bytes += 1
            self._drop_before(kfs[0][0])
        self._set_trim_at()

    def _drop_before(self, seq: int) -> None:
        n = seq - self._first_seq
        if n <= 0:
            return
        data = self._data
        dropped = 0
        for _ in range(n):
            dropped += len(data.popleft())
        self._bytes -= dropped
        self._first_seq = seq
        self._head += n * _FIELDS
        # Reclaim the words in front once they are half the column: amortised O(1).
        if self._head * 2 >= len(self._meta):
            del self._meta[: self._head]
            self._head = 0

    # -- hand-over ---------------------------------------------------------------------------
    def drain(self) -> list[Packet]:
        """Hand every buffered packet over (oldest first) and empty the buffer.

        The caller feeds live packets to the writer from here on: since push and drain are
        called from one thread (or under one lock), no packet is lost or duplicated at the seam.
        The packets are equal to the ones pushed (the same payload objects), not the same
        Packet objects: the buffer keeps their fields, not the objects.
        """
        out = self.snapshot()
        self.clear()
        return out

    def clear(self) -> None:
        del self._meta[:]
        self._head = 0
        self._keyframes.clear()
        self._first_seq += len(self._data)
        self._data.clear()
        self._bytes = 0
        self._newest_video_us = None
        self._trim_at = _NEVER

    # -- inspection ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._data)

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
        return RingStats(len(self._data), self._bytes, span, self._dropped_for_bytes)

    def snapshot(self) -> list[Packet]:
        """The buffered packets, oldest first, rebuilt from the columns (for inspection and
        tests; drain() hands them over)."""
        meta = self._meta
        fields = zip(*[iter(meta[self._head :])] * _FIELDS, strict=True)
        return [
            Packet(
                _VIDEO if flags & _IS_VIDEO else _AUDIO,
                pts,
                duration,
                bool(flags & _IS_KEY),
                data,
                flags >> _FLAG_BITS if flags & _HAS_FRAME else None,
            )
            for data, (pts, duration, flags) in zip(self._data, fields, strict=True)
        ]
