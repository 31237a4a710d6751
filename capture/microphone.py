"""Microphone backends: the interface the daemon drives, and the PyAudio backend for the Pi.

The simulator's twin is :class:`simulator.microphone.SimMicrophone` (poll-driven). On the
device PortAudio pushes: :class:`PyAudioMicrophone` opens an input stream in PyAudio's
*callback* mode (in blocking mode an input overflow raises and closes the stream for good:
shared/DESIGN.md, "Field notes"). The callback runs on PortAudio's thread and only enqueues
the bytes with the capture time of their first sample; a worker thread encodes them to AAC
(:class:`capture.audio_encoder.AacEncoder`) and hands the packets on.

From PortAudio's ``time_info`` to capture time
----------------------------------------------
PyAudio passes PortAudio's ``PaStreamCallbackTimeInfo`` as a dict. For ALSA
(``src/hostapi/alsa/pa_linux_alsa.c``, ``CalculateTimeInfo``) ``current_time`` is the
capture PCM's status timestamp and ``input_buffer_adc_time`` is that minus the frames
waiting in the buffer (``delay / rate``): when the first frame of this callback's buffer was
captured. Which kernel clock these are in depends on versions: PortAudio 19.6/19.7
(Debian 12, Raspberry Pi OS Bookworm) stamp ``CLOCK_REALTIME`` through
``PaUtil_GetTime``, later PortAudio ``CLOCK_MONOTONIC``, and an ALSA PCM's status
timestamp follows its ``tstamp_type``; some plugins report 0. So the backend never takes
those numbers as capture time. In the callback it reads the capture clock (``now``) and
the candidate kernel clocks; ``current_time`` within a second of one of them identifies
PortAudio's clock, and the buffer's age ``that_clock_now - input_buffer_adc_time`` is a
*difference* in one clock, valid whatever its base. The first sample was captured at
``now - age``. When ``time_info`` is unusable the buffer is taken to have just filled:
``age = frames / rate``.

The encoder stamps packets from the sample count after the first chunk (the microphone's
own clock). Sound and picture stay in step across the hours of a shift by comparing, chunk
by chunk, each chunk's measured capture time with the time its sample count predicts: the
median over a window of chunks (robust to a late callback) beyond ``max_drift_us`` is
corrected by inserting silence (samples were lost, or the microphone's clock is slow) or by
dropping samples (its clock is fast). Chunks the worker could not keep up with (the queue is
bounded) are replaced by exactly as much silence. PortAudio input overflows
(``paInputOverflow``) lose an unknown amount: they are counted, reported through
``on_warning`` and never fatal; the drift check then measures the gap and fills it.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from base.clock import Clock
from base.formats import AudioFormat
from base.packets import Packet
from capture.audio_encoder import AacEncoder
from capture.faults import FaultReporter

log = logging.getLogger("bwv.microphone")

PacketCallback = Callable[[Packet], None]
MessageCallback = Callable[[str], None]

DEFAULT_TIME_SOURCES: Mapping[str, Callable[[], float]] = {
    "monotonic": time.monotonic,
    "realtime": time.time,
}
"""Kernel clocks PortAudio's ``time_info`` may be in, each read as seconds."""


class MicrophoneBackend(Protocol):
    """A microphone that pushes AAC packets stamped with capture time from its own thread.

    ``packets_delivered`` counts packets handed to ``on_packet``; ``fault`` is ``None`` or the
    first fault seen (also reported to the backend's ``on_fault``). Overflows are warnings.
    """

    packets_delivered: int

    @property
    def fault(self) -> str | None: ...

    def start(self, on_packet: PacketCallback) -> None: ...

    def stop(self) -> None: ...


def buffer_age_us(
    time_info: Mapping[str, float] | None, clock_now_s: Mapping[str, float]
) -> int | None:
    """How long before ``clock_now_s`` the first frame of a callback's buffer was captured,
    from PortAudio's ``time_info``; ``None`` when ``time_info`` matches none of the clocks
    (``clock_now_s``: each candidate kernel clock's reading, in seconds, taken in the
    callback)."""
    if not time_info:
        return None
    adc = float(time_info.get("input_buffer_adc_time") or 0.0)
    current = float(time_info.get("current_time") or 0.0)
    if adc <= 0.0 or current <= 0.0 or adc > current + 1e-3:
        return None
    for now in clock_now_s.values():
        if abs(current - now) < 1.0:
            age = now - adc
            return round(age * 1_000_000) if 0.0 <= age < 2.0 else None
    return None


@dataclass(frozen=True, slots=True)
class _Chunk:
    data: bytes
    frames: int
    t_us: int  # capture time of the first frame
    overflow: bool  # PortAudio flagged an input overflow before this buffer
    lost_frames: int  # frames of chunks dropped because the queue was full, before this one


@dataclass
class MicrophoneStats:
    chunks: int = 0
    input_overflows: int = 0  # PortAudio's paInputOverflow flags
    dropped_chunks: int = 0  # chunks lost because the encoder fell behind (queue full)
    samples_inserted: int = 0  # silence put in to keep sync (lost audio, slow clock)
    samples_dropped: int = 0  # samples left out to keep sync (fast clock)
    drift_corrections: int = 0
    offsets_us: deque[int] = field(default_factory=lambda: deque(maxlen=64))


class PyAudioMicrophone:
    """A PortAudio input stream (int16, ``fmt.channels`` channels at ``fmt.sample_rate``,
    ``chunk`` frames per callback) encoded to AAC at ``fmt.bitrate``.

    The device is ``device_index``, or the input device whose name is ``device_name`` (an
    exact match first, else the one whose name contains it), or PortAudio's default input.
    ``time_sources`` are the kernel clocks ``time_info`` is matched against (see the module
    docstring); tests inject virtual ones. pyaudio is imported in :meth:`start`.
    """

    def __init__(
        self,
        fmt: AudioFormat,
        clock: Clock,
        *,
        chunk: int = 1024,
        device_index: int | None = None,
        device_name: str | None = None,
        max_queue_chunks: int = 256,
        max_drift_us: int | None = 20_000,
        drift_window: int = 32,
        on_fault: MessageCallback | None = None,
        on_warning: MessageCallback | None = None,
        time_sources: Mapping[str, Callable[[], float]] = DEFAULT_TIME_SOURCES,
    ) -> None:
        if chunk <= 0 or max_queue_chunks <= 0 or drift_window <= 0:
            raise ValueError("chunk, max_queue_chunks and drift_window must be positive")
        if device_index is not None and device_name is not None:
            raise ValueError("give device_index or device_name, not both")
        self.fmt = fmt
        self.clock = clock
        self.chunk = chunk
        self.device_index = device_index
        self.device_name = device_name
        self.max_drift_us = max_drift_us
        self.drift_window = drift_window
        self._faults = FaultReporter("microphone", log, on_fault)
        self.on_warning = on_warning
        self.time_sources = dict(time_sources)
        self.packets_delivered = 0
        self.stats = MicrophoneStats()
        self.device_info: dict[str, Any] | None = None
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=max_queue_chunks)
        self._frame_bytes = 2 * fmt.channels
        self._on_packet: PacketCallback | None = None
        self._pa: Any = None
        self._stream: Any = None
        self._continue = 0  # pyaudio.paContinue, once imported
        self._overflow_flag = 0  # pyaudio.paInputOverflow, once imported
        self._lost_frames = 0  # written by the callback thread only
        self._worker: threading.Thread | None = None
        self._encoder: AacEncoder | None = None
        self._t0_us: int | None = None
        self._samples = 0  # samples fed to the encoder, silence included
        self._pending_drop = 0
        self._offsets: deque[int] = deque(maxlen=drift_window)
        self._last_warning_us: int | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, on_packet: PacketCallback) -> None:
        if self._stream is not None:
            raise RuntimeError("microphone already started")
        import pyaudio

        self._on_packet = on_packet
        self._continue = pyaudio.paContinue
        self._overflow_flag = pyaudio.paInputOverflow
        self._encoder = AacEncoder(self.fmt)
        self._pa = pyaudio.PyAudio()
        try:
            index = self._resolve_device()
            self._stream = self._pa.open(
                rate=self.fmt.sample_rate,
                channels=self.fmt.channels,
                format=pyaudio.paInt16,
                input=True,
                input_device_index=index,
                frames_per_buffer=self.chunk,
                stream_callback=self._callback,
                start=False,
            )
            self._worker = threading.Thread(target=self._work, name="bwv-mic", daemon=True)
            self._worker.start()
            self._stream.start_stream()
        except BaseException:
            self._shutdown()
            raise
        name = self.device_info["name"] if self.device_info else "default"
        log.info(
            "microphone %r: %d Hz, %d ch, %d frames per buffer",
            name,
            self.fmt.sample_rate,
            self.fmt.channels,
            self.chunk,
        )

    def stop(self) -> None:
        """Stop the stream, encode what was captured (the encoder is flushed), and release
        PortAudio. Idempotent."""
        self._shutdown()

    def check(self) -> str | None:
        """The fault, if any; a stream that stopped on its own (device gone) is one."""
        stream = self._stream
        if self.fault is None and stream is not None:
            try:
                active = stream.is_active()
            except Exception as e:  # noqa: BLE001
                active, why = False, f"{type(e).__name__}: {e}"
            else:
                why = "the input stream stopped"
            if not active:
                self._fail(why)
        return self.fault

    def _shutdown(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop_stream()  # returns once the callback has run for the last time
            finally:
                stream.close()
        pa, self._pa = self._pa, None
        if pa is not None:
            pa.terminate()
        worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(None)
            worker.join(timeout=10)
            if worker.is_alive():
                self._fail("the encoder thread did not finish")

    def _resolve_device(self) -> int | None:
        pa = self._pa
        if self.device_index is not None:
            self.device_info = pa.get_device_info_by_index(self.device_index)
            return self.device_index
        if self.device_name is None:
            return None
        inputs = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if info.get("maxInputChannels", 0) >= self.fmt.channels:
                inputs.append(info)
        for match in (
            lambda n: n == self.device_name,
            lambda n: self.device_name.lower() in n.lower(),
        ):
            found = [d for d in inputs if match(str(d["name"]))]
            if found:
                self.device_info = found[0]
                return int(found[0]["index"])
        names = ", ".join(repr(d["name"]) for d in inputs) or "none"
        raise LookupError(f"no input device named {self.device_name!r} (inputs: {names})")

    # -- PortAudio's thread -------------------------------------------------------------------

    def _callback(
        self,
        in_data: bytes | None,
        frame_count: int,
        time_info: Mapping[str, float] | None,
        status_flags: int,
    ) -> tuple[None, int]:
        """Only timestamps and enqueues: never blocks, never raises."""
        now_us = self.clock.now_us()
        try:
            clocks = {name: read() for name, read in self.time_sources.items()}
            age = buffer_age_us(time_info, clocks)
            if age is None:
                age = frame_count * 1_000_000 // self.fmt.sample_rate
            overflow = bool(status_flags & self._overflow_flag)
            if overflow:
                self.stats.input_overflows += 1
            item = _Chunk(
                bytes(in_data or b""), frame_count, now_us - age, overflow, self._lost_frames
            )
            self._queue.put_nowait(item)
            self._lost_frames = 0
        except queue.Full:
            self._lost_frames += frame_count
            self.stats.dropped_chunks += 1
        except Exception:  # noqa: BLE001 - an exception here would abort the stream
            log.exception("microphone callback")
        return None, self._continue

    # -- the worker -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self.fault is not None and self._encoder is None:
                continue  # broken: keep draining so the callback never finds the queue full
            try:
                self._take(item)
            except Exception as e:  # noqa: BLE001
                self._encoder = None
                self._fail(f"encoder: {type(e).__name__}: {e}")
        if self._encoder is not None:
            try:
                # chunks dropped after the last one queued (the stream has stopped: the
                # callback no longer touches the count)
                if self._lost_frames and self._t0_us is not None:
                    self._insert_silence(self._lost_frames)
                self._lost_frames = 0
                self._deliver(self._encoder.flush())
            except Exception as e:  # noqa: BLE001
                self._fail(f"encoder flush: {type(e).__name__}: {e}")

    def _take(self, item: _Chunk) -> None:
        self.stats.chunks += 1
        rate = self.fmt.sample_rate
        pcm = np.frombuffer(item.data, dtype="<i2")
        pcm = pcm[: len(pcm) - len(pcm) % self.fmt.channels].reshape(-1, self.fmt.channels)
        if self._t0_us is None:
            self._t0_us = item.t_us
        if item.lost_frames:
            self._insert_silence(item.lost_frames)
            self._warn(
                f"audio encoder fell behind: {item.lost_frames} frames replaced by silence",
                item.t_us,
            )
        if item.overflow:
            self._offsets.clear()  # the loss shifts every later offset: measure afresh
            self._warn("microphone input overflow: audio was lost", item.t_us)
        if self.max_drift_us is not None:
            expected = self._t0_us + self._samples * 1_000_000 // rate
            offset = item.t_us - expected
            self._offsets.append(offset)
            self.stats.offsets_us.append(offset)
            if len(self._offsets) == self._offsets.maxlen:
                median = int(statistics.median(self._offsets))
                if abs(median) > self.max_drift_us:
                    self._correct(median)
                self._offsets.clear()
        if self._pending_drop:
            n = min(self._pending_drop, len(pcm))
            pcm = pcm[n:]
            self._pending_drop -= n
            self.stats.samples_dropped += n
        if len(pcm):
            self._encode(pcm)

    def _correct(self, offset_us: int) -> None:
        samples = round(offset_us * self.fmt.sample_rate / 1_000_000)
        self.stats.drift_corrections += 1
        log.info("audio %+d µs off its capture time: %+d samples", offset_us, samples)
        if samples > 0:
            self._insert_silence(samples)
        elif samples < 0:
            self._pending_drop += -samples

    def _insert_silence(self, frames: int) -> None:
        self.stats.samples_inserted += frames
        self._encode(np.zeros((frames, self.fmt.channels), dtype=np.int16))

    def _encode(self, pcm: np.ndarray) -> None:
        assert self._encoder is not None and self._t0_us is not None
        self._samples += len(pcm)
        self._deliver(self._encoder.encode(pcm, self._t0_us))

    def _deliver(self, packets: list[Packet]) -> None:
        assert self._on_packet is not None
        for p in packets:
            self._on_packet(p)
            self.packets_delivered += 1

    def _warn(self, message: str, at_us: int) -> None:
        """Log and report, at most once every 10 s of capture time."""
        if self._last_warning_us is not None and at_us - self._last_warning_us < 10_000_000:
            return
        self._last_warning_us = at_us
        log.warning(
            "%s (overflows %d, chunks dropped %d)",
            message,
            self.stats.input_overflows,
            self.stats.dropped_chunks,
        )
        if self.on_warning is not None:
            try:
                self.on_warning(message)
            except Exception:  # noqa: BLE001
                log.exception("on_warning callback failed")

    @property
    def fault(self) -> str | None:
        return self._faults.fault

    def _fail(self, reason: str) -> None:
        self._faults.report(reason)
