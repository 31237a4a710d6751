"""The pre-record ring buffer (pre_record/ring.py, shared/DESIGN.md "Pre-record ring buffer").

Property tests feed the buffer realistic interleaved streams: video at a frame rate with a
keyframe every GOP (keyframes bigger), AAC audio every 1024 samples at 48 kHz (~21.3 ms)
arriving a little after the video captured at the same time, random sizes. After every push
the buffer is checked against the invariants of the module docstring and against a naive
reference model written here from the design note, not from the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from capture.packets import Packet, Stream
from pre_record.ring import RingBuffer

S = 1_000_000  # µs
AUDIO_RATE = 48_000
AUDIO_FRAME = 1024  # samples per AAC packet: 21.333 ms
NO_LIMIT = 1 << 60


# -- streams -------------------------------------------------------------------------------
def frame_pts(index: int, fps: int) -> int:
    return index * S // fps


def audio_pts(n: int) -> int:
    return n * AUDIO_FRAME * S // AUDIO_RATE


def make_stream(
    fps: int,
    gop: int,
    video_sizes: list[int],
    *,
    first_frame: int = 0,
    audio_sizes: list[int] | None = None,
    audio_lag_us: int = 0,
    key_factor: int = 5,
) -> list[Packet]:
    """An encoder's output in arrival order.

    Video frame ``f`` (``first_frame``, ``first_frame + 1``, ...) is captured at
    ``f / fps`` s and is a keyframe when ``f % gop == 0`` (so a stream can begin mid-GOP),
    keyframes ``key_factor`` times bigger. With ``audio_sizes`` (cycled), AAC packets cover
    the same time span; each arrives once its 1024 samples are captured plus
    ``audio_lag_us`` of encoder latency, so audio trails the video of the same instant.
    """
    events: list[tuple[int, int, Packet]] = []  # (arrival µs, tie-break, packet)
    for i, size in enumerate(video_sizes):
        f = first_frame + i
        pts = frame_pts(f, fps)
        key = f % gop == 0
        data = bytes(size * key_factor if key else size)
        p = Packet(Stream.VIDEO, pts, frame_pts(f + 1, fps) - pts, key, data, f)
        events.append((pts, 0, p))
    if audio_sizes and video_sizes:
        start, end = frame_pts(first_frame, fps), frame_pts(first_frame + len(video_sizes), fps)
        n = -(-start * AUDIO_RATE // (AUDIO_FRAME * S))  # first audio packet at or after start
        k = 0
        while audio_pts(n) < end:
            pts = audio_pts(n)
            dur = audio_pts(n + 1) - pts
            data = bytes(audio_sizes[k % len(audio_sizes)])
            events.append(
                (pts + dur + audio_lag_us, 1, Packet(Stream.AUDIO, pts, dur, False, data))
            )
            n += 1
            k += 1
    events.sort(key=lambda e: (e[0], e[1]))
    return [p for _, _, p in events]


def is_key(p: Packet) -> bool:
    return p.stream is Stream.VIDEO and p.keyframe


def short(p: Packet) -> str:
    """``V12K@400000:5000`` (video frame 12, keyframe, pts, bytes) or ``A@21333:171``."""
    if p.stream is Stream.VIDEO:
        return f"V{p.frame_index}{'K' if p.keyframe else ''}@{p.pts_us}:{p.size}"
    return f"A@{p.pts_us}:{p.size}"


def ident(p: Packet) -> tuple[Stream, int]:
    """Which packet of the stream this is: the buffer hands back equal Packets rebuilt from
    its columns, not the pushed objects, so packets are told apart by stream and time."""
    return p.stream, p.pts_us


def assert_same(got: list[Packet], want: list[Packet]) -> None:
    """Packets equal to the pushed ones, in the same order, holding the very same payload
    objects (the buffer keeps fields, not Packet objects, and never copies a payload)."""
    assert [short(p) for p in got] == [short(p) for p in want]
    assert got == want
    assert all(g.data is w.data for g, w in zip(got, want, strict=True))


# -- the reference model -------------------------------------------------------------------
class Reference:
    """The design note, naively: O(n) work per question, nothing clever.

    Since the last drain, a packet is *accepted* unless it is video or audio arriving before
    the first keyframe, or audio while audio is off. The buffer holds the accepted packets
    from a start keyframe on: the newest keyframe at or before ``newest video - duration``
    (the first keyframe if there is none yet), moved on to later keyframes while the held
    bytes exceed the budget, but never past the newest keyframe.
    """

    def __init__(self, duration_us: int, max_bytes: int, keep_audio: bool = True) -> None:
        self.duration_us = duration_us
        self.max_bytes = max_bytes
        self.keep_audio = keep_audio
        self.accepted: list[Packet] = []

    def push(self, p: Packet) -> None:
        seen_key = any(is_key(q) for q in self.accepted)
        if p.stream is Stream.VIDEO:
            if p.keyframe or seen_key:
                self.accepted.append(p)
        elif self.keep_audio and seen_key:
            self.accepted.append(p)

    def start(self) -> int:
        acc = self.accepted
        keys = [i for i, q in enumerate(acc) if is_key(q)]
        if not keys:
            return len(acc)
        newest = max(q.pts_us for q in acc if q.stream is Stream.VIDEO)
        covering = [i for i in keys if acc[i].pts_us <= newest - self.duration_us]
        first = covering[-1] if covering else keys[0]
        for i in keys:
            if i >= first and sum(q.size for q in acc[i:]) <= self.max_bytes:
                return i
        return keys[-1]

    def held(self) -> list[Packet]:
        return self.accepted[self.start() :]

    def drain(self) -> list[Packet]:
        out = self.held()
        self.accepted = []
        return out


# -- invariants ----------------------------------------------------------------------------
def check_invariants(ring: RingBuffer, accepted: list[Packet], pushed: list[Packet]) -> None:
    """The docstring's invariants, each on its own. ``accepted``: what the ring took in
    since the last drain (as the reference saw it); ``pushed``: everything pushed since."""
    held = ring.snapshot()
    assert len(ring) == len(held)
    assert ring.bytes == sum(p.size for p in held)
    if not held:
        assert ring.oldest_video_us() is None
        return
    video = [p for p in held if p.stream is Stream.VIDEO]
    keys = [p for p in video if p.keyframe]

    # The oldest packet, and so the oldest video packet, is a keyframe.
    assert is_key(held[0])
    assert ring.oldest_video_us() == held[0].pts_us

    # Arrival order, nothing skipped: the held packets are a contiguous run of what the
    # ring accepted since the drain, up to the newest; every video packet pushed since the
    # oldest held one is there.
    pos = {ident(p): i for i, p in enumerate(pushed)}
    idx = [pos[ident(p)] for p in held]
    assert idx == sorted(idx)
    a0 = next(i for i, p in enumerate(accepted) if ident(p) == ident(held[0]))
    assert [ident(p) for p in held] == [ident(p) for p in accepted[a0:]]
    held_ids = {ident(p) for p in held}
    assert all(ident(p) in held_ids for p in pushed[idx[0] :] if p.stream is Stream.VIDEO)

    newest = video[-1].pts_us
    cutoff = newest - ring.duration_us
    # At most one GOP more than the duration: only the oldest keyframe is at or before it.
    assert all(k.pts_us > cutoff for k in keys[1:])

    # Byte budget: kept whenever more than one GOP is held.
    if len(keys) > 1:
        assert ring.bytes <= ring.max_bytes

    # At least the duration once it has been captured, unless the budget forbade it: then
    # the GOP before the oldest held one would not have fitted with what is held.
    first_key = next(p for p in accepted if is_key(p))
    if newest - first_key.pts_us >= ring.duration_us and held[0].pts_us > cutoff:
        prev = max(i for i, p in enumerate(accepted[:a0]) if is_key(p))
        assert sum(p.size for p in accepted[prev:]) > ring.max_bytes


# -- strategies ----------------------------------------------------------------------------
@dataclass
class Scenario:
    fps: int
    gop: int
    packets: list[Packet]
    duration_us: int
    max_bytes: int
    keep_audio: bool
    drains: frozenset[int]  # drain before pushing packets[i] (i == len: at the end)
    audio_toggles: frozenset[int]  # flip keep_audio before pushing packets[i]

    def __repr__(self) -> str:  # noted by the tests: what a failing example looks like
        return (
            f"Scenario(fps={self.fps}, gop={self.gop}, duration_us={self.duration_us}, "
            f"max_bytes={self.max_bytes}, keep_audio={self.keep_audio}, "
            f"drains={sorted(self.drains)}, audio_toggles={sorted(self.audio_toggles)}, "
            f"packets=[{' '.join(map(short, self.packets))}])"
        )


@st.composite
def scenarios(draw, *, drains: bool = True, toggles: bool = True, limit: bool | None = None):
    fps = draw(st.sampled_from([10, 15, 25, 30]))
    gop = draw(st.integers(1, fps) | st.integers(1, 2 * fps))
    n = draw(st.integers(0, 5 * fps) | st.integers(3 * fps, 5 * fps))  # up to 5 s of video
    video_sizes = draw(st.lists(st.integers(1, 3000), min_size=n, max_size=n))
    audio = draw(st.booleans())
    audio_sizes = draw(st.lists(st.integers(1, 400), min_size=1, max_size=8)) if audio else None
    packets = make_stream(
        fps,
        gop,
        video_sizes,
        first_frame=draw(st.integers(0, 2 * gop)),
        audio_sizes=audio_sizes,
        audio_lag_us=draw(st.integers(0, 80_000)),
    )
    # Durations on and either side of frame boundaries, and anywhere.
    d_frames = draw(st.integers(0, 4 * fps))
    duration_us = draw(
        st.one_of(
            st.integers(-1, 1).map(lambda d: max(0, frame_pts(d_frames, fps) + d)),
            st.integers(0, 5 * S),
            st.just(10 * S),  # longer than the stream
        )
    )
    if limit is None:
        limit = draw(st.booleans())
    # A budget of a few GOPs (or less than one), so that it binds with several GOPs held.
    gop_bytes = sum(p.size for p in packets if p.stream is Stream.VIDEO) * gop // max(n, 1)
    budget = st.one_of(
        st.floats(0.2, 8).map(lambda g: max(1, int(g * gop_bytes))), st.integers(1, 60_000)
    )
    max_bytes = draw(budget) if limit else NO_LIMIT
    points = st.frozensets(st.integers(0, len(packets)), max_size=4)
    return Scenario(
        fps,
        gop,
        packets,
        duration_us,
        max_bytes,
        keep_audio=draw(st.booleans()),
        drains=draw(points) if drains else frozenset(),
        audio_toggles=draw(points) if toggles else frozenset(),
    )


def run(sc: Scenario, on_step=None) -> list[list[Packet]]:
    """Feed the scenario to a ring and the reference side by side, checking after every
    push; returns the drained lists (the last one: a drain at the end)."""
    note(repr(sc))
    ring = RingBuffer(sc.duration_us, sc.max_bytes, keep_audio=sc.keep_audio)
    ref = Reference(sc.duration_us, sc.max_bytes, keep_audio=sc.keep_audio)
    drained: list[list[Packet]] = []
    pushed: list[Packet] = []
    for i, p in enumerate(sc.packets):
        if i in sc.drains:
            out = ring.drain()
            assert_same(out, ref.drain())
            drained.append(out)
            pushed = []
            assert len(ring) == 0 and ring.bytes == 0 and ring.oldest_video_us() is None
        if i in sc.audio_toggles:
            ring.keep_audio = ref.keep_audio = not ring.keep_audio
        ring.push(p)
        ref.push(p)
        pushed.append(p)
        assert_same(ring.snapshot(), ref.held())
        check_invariants(ring, ref.accepted, pushed)
        if on_step:
            on_step(ring, ref)
    out = ring.drain()
    assert_same(out, ref.drain())
    drained.append(out)
    # All drained lists together: each packet at most once, in input order.
    pos = {ident(p): i for i, p in enumerate(sc.packets)}
    order = [pos[ident(p)] for out in drained for p in out]
    assert order == sorted(set(order))
    return drained


# -- properties ----------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_matches_reference_and_keeps_invariants(sc):
    run(sc)


@settings(max_examples=60, deadline=None)
@given(scenarios(drains=False, toggles=False, limit=False))
def test_without_budget_covers_duration_and_at_most_one_gop_more(sc):
    gop_us = frame_pts(sc.gop, sc.fps) + 1
    first_key: list[int] = []

    def step(ring: RingBuffer, ref: Reference) -> None:
        held = ring.snapshot()
        if not held:
            return
        if not first_key:
            first_key.append(held[0].pts_us)
        newest = max(p.pts_us for p in held if p.stream is Stream.VIDEO)
        oldest = ring.oldest_video_us()
        assert oldest is not None
        if newest - first_key[0] >= sc.duration_us:
            assert oldest <= newest - sc.duration_us
            assert newest - oldest < sc.duration_us + gop_us
        else:
            assert oldest == first_key[0]  # not yet full: nothing thrown away
        assert ring.stats().video_span_us == newest - oldest
        assert ring.stats().dropped_for_bytes == 0

    run(sc, step)


@settings(max_examples=60, deadline=None)
@given(scenarios(toggles=False, limit=True))
def test_byte_budget_respected_unless_a_single_gop_is_larger(sc):
    def step(ring: RingBuffer, ref: Reference) -> None:
        held = ring.snapshot()
        if ring.bytes > sc.max_bytes:  # only the newest GOP, kept whole
            newest_key = [p for p in ref.accepted if is_key(p)][-1]
            assert held[0] == newest_key
            assert sum(is_key(p) for p in held) == 1
        assert ring.stats().bytes == ring.bytes

    run(sc, step)


@settings(max_examples=80, deadline=None)
@given(scenarios(drains=False, toggles=False), st.data())
def test_press_seam_nothing_lost_or_duplicated(sc, data):
    """Buffer, press (drain; the live stream then goes to the writer directly), stop (the
    buffer refills from the live stream), press again... Each recording (drained list, then
    the live packets) is exactly a run of the input ending at the stop: nothing lost,
    nothing twice, never a packet from before the previous recording's stop."""
    note(repr(sc))
    packets = sc.packets
    cuts = sorted(data.draw(st.sets(st.integers(0, len(packets)), max_size=6), label="cuts"))
    cuts.append(len(packets))
    ring = RingBuffer(sc.duration_us, sc.max_bytes, keep_audio=sc.keep_audio)
    handed: set[int] = set()
    stop = 0
    for press, next_stop in zip(cuts[::2], [*cuts[1::2], len(packets)], strict=False):
        for p in packets[stop:press]:
            ring.push(p)
        backlog = ring.drain()
        assert len(ring) == 0 and ring.bytes == 0
        written = backlog + packets[press:next_stop]
        assert not handed & {ident(p) for p in written}
        handed |= {ident(p) for p in written}
        if backlog:
            i0 = next(i for i, p in enumerate(packets) if ident(p) == ident(backlog[0]))
            assert i0 >= stop and is_key(backlog[0])
            expected = [
                p
                for i, p in enumerate(packets[i0:next_stop], i0)
                if i >= press or sc.keep_audio or p.stream is Stream.VIDEO
            ]
            assert [ident(p) for p in written] == [ident(p) for p in expected]
            if sc.keep_audio:
                assert_same(written, packets[i0:next_stop])
        stop = next_stop


@settings(max_examples=60, deadline=None)
@given(scenarios(drains=False, toggles=False).filter(lambda sc: not sc.keep_audio))
def test_keep_audio_false_holds_no_audio(sc):
    def step(ring: RingBuffer, ref: Reference) -> None:
        assert all(p.stream is Stream.VIDEO for p in ring.snapshot())

    run(sc, step)


# -- what an officer relies on -------------------------------------------------------------
def officer_stream(
    seconds: float, fps: int = 30, gop: int = 30, audio: bool = True, first_frame: int = 0
) -> list[Packet]:
    import random

    rnd = random.Random(1)
    n = int(seconds * fps)
    return make_stream(
        fps,
        gop,
        [rnd.randint(500, 1500) for _ in range(n)],
        first_frame=first_frame,
        audio_sizes=[rnd.randint(150, 200) for _ in range(20)] if audio else None,
        audio_lag_us=30_000,
    )


def feed(ring: RingBuffer, packets: list[Packet]) -> RingBuffer:
    for p in packets:
        ring.push(p)
    return ring


def test_thirty_seconds_pre_record_after_a_minute():
    """30 s pre-record at 30 fps, GOP 30: a press after 60 s hands over a buffer that starts
    on a keyframe between 31 s and 30 s before the newest frame."""
    packets = officer_stream(60)
    ring = feed(RingBuffer(30 * S, 64_000_000), packets)
    out = ring.drain()
    newest = max(p.pts_us for p in out if p.stream is Stream.VIDEO)
    assert is_key(out[0])
    assert newest - 31 * S < out[0].pts_us <= newest - 30 * S
    assert out[-1] == packets[-1]  # up to the very last packet
    assert any(p.stream is Stream.AUDIO for p in out)
    frames = [p.frame_index for p in out if p.stream is Stream.VIDEO]
    assert frames == list(range(frames[0], frames[-1] + 1))  # not a frame missing
    assert len(ring) == 0 and ring.bytes == 0


def test_press_before_the_buffer_is_full_keeps_everything_since_the_first_keyframe():
    packets = officer_stream(10, first_frame=12)  # the camera comes up mid-GOP
    out = feed(RingBuffer(30 * S, 64_000_000), packets).drain()
    first_key = next(p for p in packets if is_key(p))
    assert out[0] == first_key  # the P-frames before it are undecodable and dropped
    assert_same(out, packets[packets.index(first_key) :])


def test_the_live_stream_follows_the_buffer_without_gap_or_repeat():
    packets = officer_stream(60)
    press = next(i for i, p in enumerate(packets) if p.pts_us >= 45 * S)
    ring = feed(RingBuffer(30 * S, 64_000_000), packets[:press])
    written = ring.drain() + packets[press:]
    assert_same(written, packets[packets.index(written[0]) :])
    frames = [p.frame_index for p in written if p.stream is Stream.VIDEO]
    assert frames == list(range(frames[0], 1800))


def test_after_a_recording_the_buffer_refills_from_a_new_keyframe():
    packets = officer_stream(20)
    ring = RingBuffer(5 * S, 64_000_000)
    first = feed(ring, packets[:200]).drain()
    stop = next(i for i, p in enumerate(packets) if p.pts_us >= 12_500_000)  # mid-GOP
    held = feed(ring, packets[stop:]).snapshot()
    assert is_key(held[0]) and held[0].pts_us >= 13 * S
    assert not set(map(id, first)) & set(map(id, held))


def test_byte_budget_smaller_than_the_duration_keeps_the_whole_gops_that_fit():
    packets = make_stream(30, 30, [1000] * 900)  # 30 s; a GOP is 5000 + 29 * 1000 bytes
    budget = 34_000 * 11 // 2  # room for 5.5 GOPs of the 20 s asked for
    ring = feed(RingBuffer(20 * S, budget), packets)
    held = ring.snapshot()
    assert_same(held, packets[750:])  # the last 5 GOPs
    assert ring.bytes == 5 * 34_000 <= budget
    assert ring.stats().dropped_for_bytes == 25  # every GOP but the last 5


def test_byte_budget_drops_one_gop_at_a_time():
    """Regression: the budget loop popped keyframes without giving back their bytes, so a
    budget for 5 GOPs left only part of one."""
    packets = [
        Packet(Stream.VIDEO, i * 100_000, 100_000, i % 10 == 0, bytes(100), i) for i in range(105)
    ]
    ring = feed(RingBuffer(60 * S, 5_050), packets)
    assert len(ring) == 45 and ring.bytes == 4_500  # 4 whole GOPs + the current 5 frames
    assert ring.snapshot()[0].frame_index == 60
    assert ring.stats().dropped_for_bytes == 6


def test_a_single_gop_larger_than_the_budget_is_kept_whole():
    packets = officer_stream(3, audio=False)
    ring = feed(RingBuffer(10 * S, 1_000), packets[:25])  # all within the first GOP
    assert_same(ring.snapshot(), packets[:25])
    assert ring.bytes > 1_000
    feed(ring, packets[25:31])  # the next keyframe: the first GOP goes
    assert_same(ring.snapshot(), packets[30:31])


def test_zero_duration_keeps_only_the_current_gop():
    packets = officer_stream(5)
    ring = feed(RingBuffer(0, 64_000_000), packets)
    held = ring.snapshot()
    last_key = max(i for i, p in enumerate(packets) if is_key(p))
    assert_same(held, packets[last_key:])


def test_audio_off_in_pre_record_keeps_all_video():
    packets = officer_stream(10)
    held = feed(RingBuffer(30 * S, 64_000_000, keep_audio=False), packets).snapshot()
    assert_same(held, [p for p in packets if p.stream is Stream.VIDEO])


@pytest.mark.parametrize("args", [(-1, 1), (0, 0), (1, -5)])
def test_rejects_nonsense_configuration(args):
    with pytest.raises(ValueError):
        RingBuffer(*args)
