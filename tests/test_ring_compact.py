"""The pre-record ring buffer keeps a packet's fields, not the Packet object
(pre_record/ring.py): every field survives the round trip, the payload is never copied, and
what the buffer holds beyond the payloads stays well under a Packet object per packet."""

from __future__ import annotations

import gc
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.packets import Packet, Stream
from pre_record.ring import RingBuffer

S = 1_000_000
NO_LIMIT = 1 << 60
FRAME = st.none() | st.integers(-(1 << 59), (1 << 59) - 1)


def packets_after_a_keyframe() -> st.SearchStrategy[list[Packet]]:
    """A video keyframe first (so nothing is refused), then any mix of fields."""
    first = st.builds(
        Packet,
        st.just(Stream.VIDEO),
        st.integers(0, 1 << 40),
        st.integers(0, 1 << 40),
        st.just(True),
        st.binary(max_size=64),
        FRAME,
    )
    rest = st.builds(
        Packet,
        st.sampled_from(list(Stream)),
        st.integers(0, 1 << 40),
        st.integers(0, 1 << 40),
        st.booleans(),
        st.binary(max_size=64),
        FRAME,
    )
    return st.tuples(first, st.lists(rest, max_size=40)).map(lambda t: [t[0], *t[1]])


@settings(max_examples=200, deadline=None)
@given(packets_after_a_keyframe())
def test_every_field_survives_the_round_trip(packets):
    # Long enough that nothing is trimmed: the first keyframe is never passed by the cutoff.
    ring = RingBuffer(1 << 50, NO_LIMIT)
    for p in packets:
        ring.push(p)
    assert ring.snapshot() == packets
    out = ring.drain()
    assert out == packets
    assert [type(p.stream) for p in out] == [Stream] * len(out)
    assert [type(p.keyframe) for p in out] == [bool] * len(out)
    assert all(g.data is w.data for g, w in zip(out, packets, strict=True))  # not copied
    assert len(ring) == 0 and ring.snapshot() == []


def test_changing_the_duration_takes_effect_at_the_next_video_packet():
    ring = RingBuffer(10 * S, NO_LIMIT)
    for f in range(300):  # 10 s at 30 fps, a keyframe a second
        ring.push(Packet(Stream.VIDEO, f * S // 30, 33_333, f % 30 == 0, bytes(10), f))
    assert ring.oldest_video_us() == 0
    ring.duration_us = 2 * S
    ring.push(Packet(Stream.VIDEO, 10 * S, 33_333, False, bytes(10), 300))
    assert ring.oldest_video_us() == 8 * S  # the newest keyframe at or before 10 s - 2 s


def held_beyond_payload(n: int, size: int) -> float:
    """Bytes traced per packet beyond the payloads, with ``n`` fresh AAC-sized packets held
    (each with its own pts int and payload, as an encoder makes them)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        ring = RingBuffer(1 << 50, NO_LIMIT)
        ring.push(Packet(Stream.VIDEO, 10**9, 33_333, True, bytes(size), 10**6))
        for i in range(1, n):
            ring.push(Packet(Stream.AUDIO, 10**9 + i * 21_333, 21_333, False, bytes(size)))
        traced = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(ring) == n
    return (traced - n * size) / n


def test_holds_far_less_than_a_packet_object_per_packet():
    # A Packet object (80 B traced) with its pts int (28 B), the bytes header (33 B) and a
    # deque slot (8 B) came to ~150 B a packet; fields as words and the bytes header ~65 B.
    assert held_beyond_payload(20_000, 171) < 100
