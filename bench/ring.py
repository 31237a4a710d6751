"""Pre-record ring buffer figures, each side by side with picamera2's ``CircularOutput2``
(the circular buffer a picamera2 application would use) fed the same packets in the same run.

Workload: 1080p30 H.264 at 10 Mbit/s, a keyframe every 30 frames about 5x a P-frame
(P-frames ~36.8 KB, keyframes ~184 KB, 41.7 KB average; sizes +-25 % at random) and AAC
packets of 1024 samples at 48 kHz (~21.3 ms, ~171 B at 64 kbit/s, the project's default),
interleaved in arrival order; 120 s of pre-record; the default 256 MB byte budget.

- ``ringbuffer_us_per_packet``: wall µs per packet pushed, in steady state (the buffer full
  and trimming), packets pre-generated so that only the push is timed. Both buffers are fed
  side by side in 10 s chunks, taking turns; each chunk's time is its best over several
  runs. The garbage collector is on (as on the device), the pre-generated packets frozen out
  of its way. Ratio = baseline / ours.
- ``ringbuffer_memory_overhead``: (traced memory - payload bytes) / payload bytes, everything
  the buffer keeps alive, in steady state: packets are created *inside* the tracemalloc
  window (a fresh payload each, as an encoder would) and handed to the buffer, which is the
  only one to keep them. So the overhead counts the buffer's own structures *and* the
  per-packet objects (for ours: the bytes header, the ring keeping each Packet's other
  fields as machine words rather than the Packet object; for CircularOutput2: the 5-tuple it
  stores, the timestamp int and the bytes header); the detail splits off the buffer's own
  structures (what is allocated from its module's code). Worst of several samples.
  Ratio = baseline / ours.

CircularOutput2 is loaded from a ``pip install --no-deps`` of picamera2 into
``build/picamera2`` (done on demand): only ``picamera2/outputs/circularoutput2.py`` and the
``output.py`` it imports, as a private package, without picamera2's ``__init__`` (which
needs libcamera). It buffers when started with no output opened: ``outputframe`` appends
and drops what is older than ``buffer_duration_ms``; that is checked after each run.
"""

from __future__ import annotations

import gc
import importlib
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bench import BenchError, Context, Result, benchmark
from capture.packets import Packet, Stream
from pre_record.ring import RingBuffer

S = 1_000_000
PICAMERA2 = "picamera2==0.3.38"
BASELINE = "picamera2 CircularOutput2"


# -- workload --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    fps: int = 30
    gop: int = 30
    video_bitrate: int = 10_000_000
    key_factor: float = 5.0  # keyframe size / mean P-frame size
    audio: bool = True
    audio_rate: int = 48_000
    audio_frame: int = 1024  # samples per AAC packet
    audio_bitrate: int = 64_000
    audio_lag_us: int = 30_000  # the audio encoder's latency: audio trails video a little
    jitter: float = 0.25  # sizes uniform in mean * (1 +- jitter)
    pre_record_s: int = 120
    max_bytes: int = 256_000_000  # pre_record.max_mb default

    @property
    def p_mean(self) -> float:
        per_frame = self.video_bitrate / 8 / self.fps
        return per_frame * self.gop / (self.gop - 1 + self.key_factor)

    @property
    def audio_mean(self) -> float:
        return self.audio_bitrate / 8 * self.audio_frame / self.audio_rate


Spec = tuple[Stream, int, int, bool, int, "int | None"]  # stream, pts, dur, key, size, frame


def packet_specs(w: Workload, seconds: float, seed: int = 1) -> Iterator[Spec]:
    """The stream in arrival order, lazily: (stream, pts_us, duration_us, keyframe, size,
    frame_index). An AAC packet arrives once its 1024 samples are in, plus the encoder lag."""
    rnd = random.Random(seed)
    lo, hi = 1 - w.jitter, 1 + w.jitter
    n_frames = int(seconds * w.fps)
    a = 0

    def a_pts(n: int) -> int:
        return n * w.audio_frame * S // w.audio_rate

    for f in range(n_frames):
        pts = f * S // w.fps
        while w.audio and a_pts(a + 1) + w.audio_lag_us <= pts:
            size = int(w.audio_mean * rnd.uniform(lo, hi))
            yield Stream.AUDIO, a_pts(a), a_pts(a + 1) - a_pts(a), False, size, None
            a += 1
        key = f % w.gop == 0
        size = int(w.p_mean * (w.key_factor if key else 1) * rnd.uniform(lo, hi))
        yield Stream.VIDEO, pts, (f + 1) * S // w.fps - pts, key, size, f


def pooled_packets(w: Workload, seconds: float) -> list[Packet]:
    """Pre-generated packets for timing. Payloads (the right sizes, random) are shared from
    a pool so that minutes of 10 Mbit/s do not need gigabytes: only ``len`` is looked at."""
    pool: dict[int, bytes] = {}
    durations: dict[int, int] = {}  # shared int objects, as the encoders share them
    out = []
    for stream, pts, dur, key, size, frame in packet_specs(w, seconds):
        dur = durations.setdefault(dur, dur)
        # video sizes to the nearest 512 B: a few hundred distinct payloads, ~35 MB in all
        q = size if stream is Stream.AUDIO else max(512, (size + 256) // 512 * 512)
        data = pool.get(q)
        if data is None:
            data = pool[q] = bytes(q)
        out.append(Packet(stream, pts, dur, key, data, frame))
    return out


# -- the baseline ----------------------------------------------------------------------------
PRIVATE_PKG = "_bench_picamera2_outputs"


_install_failed: dict[Path, str] = {}


def ensure_picamera2(ctx: Context) -> Path:
    """``build/picamera2/picamera2/outputs``, installing picamera2 there if missing (once
    per run: a failure is remembered)."""
    target = ctx.build_dir / "picamera2"
    outputs = target / "picamera2" / "outputs"
    if (outputs / "circularoutput2.py").is_file():
        return outputs
    if target in _install_failed:
        raise BenchError(_install_failed[target])
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
        str(target),
        PICAMERA2,
    ]
    ctx.log(f"bench: installing the baseline: {' '.join(cmd[2:])}")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        err = (r.stderr or r.stdout).strip().splitlines()[-3:] if r.returncode else []
    except (OSError, subprocess.TimeoutExpired) as e:
        err = [str(e)]
    if err or not (outputs / "circularoutput2.py").is_file():
        _install_failed[target] = (
            f"the baseline needs picamera2's pure-Python outputs and installing them failed "
            f"({' | '.join(err) or 'circularoutput2.py missing'}). Install them by hand "
            f"(needs network access to PyPI): {' '.join(cmd).replace(' --quiet', '')}"
        )
        raise BenchError(_install_failed[target])
    return outputs


def picamera2_version(outputs: Path) -> str:
    dist = sorted(outputs.parent.parent.glob("picamera2-*.dist-info"))
    return dist[-1].name.removeprefix("picamera2-").removesuffix(".dist-info") if dist else "?"


@cache
def circular_output2(outputs: Path) -> type:
    """``CircularOutput2`` from ``outputs/circularoutput2.py``, loaded under a private
    package name whose ``__path__`` is that directory, so that its relative import of
    ``.output`` works and picamera2's own ``__init__`` (libcamera) never runs."""
    pkg = types.ModuleType(PRIVATE_PKG)
    pkg.__path__ = [str(outputs)]
    sys.modules[PRIVATE_PKG] = pkg
    try:
        mod = importlib.import_module(f"{PRIVATE_PKG}.circularoutput2")
    except ImportError as e:
        raise BenchError(
            f"{outputs / 'circularoutput2.py'} imports something beyond output.py ({e}); "
            f"stub it in bench/ring.py:circular_output2"
        ) from e
    return mod.CircularOutput2


def baseline_class(ctx: Context) -> tuple[type, str]:
    outputs = ensure_picamera2(ctx)
    return circular_output2(outputs), f"{BASELINE} {picamera2_version(outputs)}"


def new_ring(w: Workload) -> RingBuffer:
    return RingBuffer(w.pre_record_s * S, w.max_bytes, keep_audio=w.audio)


def new_circular(cls: type, w: Workload):
    co = cls(buffer_duration_ms=w.pre_record_s * 1000)
    co.start()  # recording into the circle; no output opened: nothing is written anywhere
    return co


def check_circular(co, w: Workload) -> None:
    """Make sure the baseline really was buffering, in steady state, and wrote nothing."""
    circ = co._circular
    if co._output is not None or not co.recording or not circ:
        raise BenchError("CircularOutput2 was not buffering (output open or not started)")
    span = circ[-1][2] - circ[0][2]
    if not (w.pre_record_s - 1) * S <= span <= w.pre_record_s * S:
        raise BenchError(f"CircularOutput2 held {span / S:.1f} s, not {w.pre_record_s} s")


def check_ring(ring: RingBuffer, w: Workload) -> None:
    span = ring.stats().video_span_us
    if not w.pre_record_s * S <= span < (w.pre_record_s + w.gop / w.fps + 1) * S:
        raise BenchError(f"the ring held {span / S:.1f} s, not {w.pre_record_s} s")


# -- ringbuffer_us_per_packet ----------------------------------------------------------------
@benchmark("ringbuffer_us_per_packet")
def us_per_packet(ctx: Context) -> Result:
    """µs per packet pushed, 1080p30 10 Mbit/s + AAC, 120 s pre-record, steady state."""
    w = Workload()
    cls, label = baseline_class(ctx)
    warm_s, chunk_s = w.pre_record_s + 5, 10
    timed_s = 180 if ctx.quick else 900
    repeat = 3 if ctx.quick else 9
    packets = pooled_packets(w, warm_s + timed_s)
    chunks: list[list[Packet]] = [[] for _ in range(timed_s // chunk_s + 1)]
    for p in packets:
        chunks[max(-1, (p.pts_us - warm_s * S) // (chunk_s * S))].append(p)
    warm = chunks.pop()  # index -1: before warm_s
    chunk_args = [
        [(p.data, p.keyframe, p.pts_us, None, p.stream is Stream.AUDIO) for p in c]
        for c in [warm, *chunks]
    ]
    warm_args = chunk_args.pop(0)
    n = sum(map(len, chunks))

    def push_all(push: Callable[[Packet], None], chunk: list[Packet]) -> float:
        t0 = time.perf_counter()
        for p in chunk:
            push(p)
        return time.perf_counter() - t0

    def output_all(out: Callable[..., None], chunk: list[tuple]) -> float:
        t0 = time.perf_counter()
        for a in chunk:
            out(*a)
        return time.perf_counter() - t0

    # Both buffers side by side, fed chunk by chunk in turns (so that whatever else the
    # machine does hits both alike); each chunk's time is the best over the repeats.
    ours = [[0.0] * len(chunks) for _ in range(repeat)]
    base = [[0.0] * len(chunks) for _ in range(repeat)]
    gc.collect()
    gc.freeze()  # the pre-generated packets: out of the collector's way
    try:
        for r in range(repeat):
            ring, co = new_ring(w), new_circular(cls, w)
            push_all(ring.push, warm)
            output_all(co.outputframe, warm_args)
            for k in range(len(chunks)):
                if (r + k) % 2:
                    base[r][k] = output_all(co.outputframe, chunk_args[k])
                    ours[r][k] = push_all(ring.push, chunks[k])
                else:
                    ours[r][k] = push_all(ring.push, chunks[k])
                    base[r][k] = output_all(co.outputframe, chunk_args[k])
            check_ring(ring, w)
            check_circular(co, w)
            del ring, co
            gc.collect()
    finally:
        gc.unfreeze()

    def best(t: list[list[float]]) -> float:
        return sum(min(col) for col in zip(*t, strict=True)) / n * 1e6

    def median(t: list[list[float]]) -> float:
        return statistics.median(map(sum, t)) / n * 1e6

    r = Result(
        "ringbuffer_us_per_packet",
        best(ours),
        "us/packet",
        detail=(
            f"{n:,} packets ({timed_s} s of stream: {w.fps} video + "
            f"{w.audio_rate / w.audio_frame:.2f} audio packets/s) pushed into a full "
            f"{w.pre_record_s} s buffer, {chunk_s} s chunks in turns with the baseline, each "
            f"chunk's best of {repeat} runs (medians of the whole runs: {median(ours):.3f} vs "
            f"{median(base):.3f} us). Ours also keeps the start on a keyframe and a byte "
            f"budget; CircularOutput2 drops by time alone (aligning on a keyframe only when it "
            f"writes out) and takes a lock per packet"
        ),
    ).against(best(base), label)
    return r.with_goal("no slower: ratio >= 1", r.ratio is not None and r.ratio >= 1)


# -- ringbuffer_memory_overhead ---------------------------------------------------------------
@dataclass
class Footprint:
    fraction: float  # (traced - payload) / payload
    per_packet: float  # bytes beyond payload per held packet
    own_per_packet: float  # of which allocated by the buffer's own code
    packets: int
    payload: int


def footprint(
    w: Workload,
    seconds: float,
    new: Callable[[], object],
    feed: Callable[[object, Spec], None],
    held: Callable[[object], list[int]],
    own_file: str,
    samples: int,
) -> Footprint:
    """Fill a buffer with fresh packets under tracemalloc; at ``samples`` points once it
    has been full for a while, compare what is traced with the payload bytes it holds."""
    sample_at = {
        int((w.pre_record_s + 5 + i * (seconds - w.pre_record_s - 5) / samples) * S)
        for i in range(1, samples + 1)
    }
    out: list[Footprint] = []
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        buf = new()
        for spec in packet_specs(w, seconds, seed=3):
            feed(buf, spec)
            if spec[0] is Stream.VIDEO and spec[1] in sample_at:
                gc.collect()
                traced = tracemalloc.get_traced_memory()[0] - base
                snap = tracemalloc.take_snapshot()
                sizes = held(buf)
                payload = sum(sizes)
                own = sum(
                    st.size
                    for st in snap.statistics("filename")
                    if st.traceback[0].filename == own_file
                )
                del snap
                over = traced - payload
                out.append(
                    Footprint(
                        over / payload, over / len(sizes), own / len(sizes), len(sizes), payload
                    )
                )
                del sizes
    finally:
        tracemalloc.stop()
    return max(out, key=lambda f: f.fraction)


@benchmark("ringbuffer_memory_overhead")
def memory_overhead(ctx: Context) -> Result:
    """Memory held beyond the payload bytes, as a fraction of them, steady state."""
    w = Workload()
    cls, label = baseline_class(ctx)
    seconds = w.pre_record_s + (15 if ctx.quick else 60)
    samples = 2 if ctx.quick else 4

    durations: dict[int, int] = {}  # the encoders share duration ints (capture/)

    def feed_ours(ring, spec: Spec) -> None:
        stream, pts, dur, key, size, frame = spec
        dur = durations.setdefault(dur, dur)
        ring.push(Packet(stream, pts, dur, key, bytes(size), frame))

    def feed_baseline(co, spec: Spec) -> None:
        stream, pts, dur, key, size, frame = spec
        co.outputframe(bytes(size), key, pts, None, stream is Stream.AUDIO)

    import pre_record.ring as ring_mod

    ours = footprint(
        w,
        seconds,
        lambda: new_ring(w),
        feed_ours,
        lambda ring: [p.size for p in ring.snapshot()],
        ring_mod.__file__,
        samples,
    )
    mod = sys.modules[cls.__module__]
    base = footprint(
        w,
        seconds,
        lambda: new_circular(cls, w),
        feed_baseline,
        lambda co: [len(e[0]) for e in co._circular],
        mod.__file__,
        samples,
    )
    return Result(
        "ringbuffer_memory_overhead",
        ours.fraction,
        "fraction",
        goal="<= 0.01",
        goal_met=ours.fraction <= 0.01,
        detail=(
            f"worst of {samples} samples; ours holds {ours.packets:,} packets, "
            f"{ours.payload / 1e6:.1f} MB of payload, {ours.per_packet:.0f} B/packet beyond "
            f"it, of which the ring's own structures {ours.own_per_packet:.1f} B/packet "
            f"({ours.own_per_packet * ours.packets / ours.payload:.5f}) and the rest the "
            f"payloads' object headers (the ring keeps a packet's fields, not the Packet); "
            f"CircularOutput2 {base.per_packet:.0f} B/packet, of which "
            f"its own structures {base.own_per_packet:.1f} B/packet "
            f"({base.own_per_packet * base.packets / base.payload:.5f})"
        ),
    ).against(base.fraction, label)
