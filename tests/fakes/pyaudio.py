"""A fake pyaudio: the part of PyAudio 0.2.14's API bwv uses, behaving like the real one.

It mirrors ``pyaudio/__init__.py`` (PyAudio 0.2.14):

- constants ``paInt16`` (8), ``paContinue`` (0), ``paComplete`` (1), ``paAbort`` (2),
  ``paInputUnderflow`` (1), ``paInputOverflow`` (2), ``paFramesPerBufferUnspecified`` (0),
  with PortAudio's values;
- ``PyAudio()``: ``get_device_count()``, ``get_device_info_by_index(i)`` (a dict with
  ``index``, ``name``, ``maxInputChannels``, ``maxOutputChannels``, ``defaultSampleRate``,
  ...), ``get_default_input_device_info()``, ``get_sample_size(format)``,
  ``open(rate, channels, format, input=False, output=False, input_device_index=None,
  output_device_index=None, frames_per_buffer=paFramesPerBufferUnspecified, start=True,
  input_host_api_specific_stream_info=None, output_host_api_specific_stream_info=None,
  stream_callback=None)`` and ``terminate()`` (closes its streams);
- ``Stream``: ``start_stream()``, ``stop_stream()`` (returns once the callback is no longer
  running), ``close()``, ``is_active()``, ``is_stopped()``, ``get_input_latency()``,
  ``get_time()``; ``read()`` refuses on a callback stream as PortAudio does;
- the callback runs on another thread as ``callback(in_data, frame_count, time_info,
  status_flags)`` with ``time_info`` a dict of ``input_buffer_adc_time``, ``current_time``,
  ``output_buffer_dac_time`` and must return ``(out_data, flag)``; an exception in it stops
  the stream (PyAudio returns ``paAbort``).

Drive it with :meth:`FakeStream.deliver`, which plays buffers through the callback on a
separate thread and waits for them. ``time_info`` is in the env's ``time_base`` clock
(seconds): each buffer's ``input_buffer_adc_time`` is when its first frame was captured on a
true sample clock that can run ``ppm`` fast or slow and lose frames before a buffer (an
overflow); the env's ``clock`` (a :class:`capture.clock.VirtualClock`), when given, is moved
to each callback's time before the callback runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from capture.clock import VirtualClock

paInt16 = 8
paInt32 = 2
paFloat32 = 1
paContinue = 0
paComplete = 1
paAbort = 2
paInputUnderflow = 1
paInputOverflow = 2
paOutputUnderflow = 4
paOutputOverflow = 8
paPrimingOutput = 16
paFramesPerBufferUnspecified = 0

SampleSource = Callable[[int, int, float], np.ndarray]
"""``source(first_sample, count, true_rate)`` -> int16 samples, shaped (count,) or
(count, channels), of the true sample clock."""


def silence(first: int, count: int, rate: float) -> np.ndarray:
    return np.zeros(count, dtype=np.int16)


@dataclass
class FakePyAudioEnv:
    devices: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "name": "bcm2835 Headphones: - (hw:0,0)",
                "maxInputChannels": 0,
                "maxOutputChannels": 8,
                "defaultSampleRate": 44100.0,
            },
            {
                "name": "USB PnP Sound Device: Audio (hw:1,0)",
                "maxInputChannels": 1,
                "maxOutputChannels": 0,
                "defaultSampleRate": 48000.0,
            },
        ]
    )
    default_input: int = 1
    source: SampleSource = silence
    clock: VirtualClock | None = None
    time_base_s: float = 1000.0  # what the time_info clock read when the clock read 0
    callback_latency_us: int = 2_000  # from buffer full to the callback running
    streams: list[FakeStream] = field(default_factory=list)
    instances: list[Any] = field(default_factory=list)
    module: ModuleType = field(init=False)

    def __post_init__(self) -> None:
        self.module = _build_module(self)

    @property
    def modules(self) -> dict[str, ModuleType]:
        return {"pyaudio": self.module}

    @property
    def stream(self) -> FakeStream:
        (s,) = self.streams
        return s

    def time_info_now(self, clock_us: int) -> float:
        return self.time_base_s + clock_us / 1e6


def make_fake_pyaudio(**kwargs: Any) -> FakePyAudioEnv:
    return FakePyAudioEnv(**kwargs)


class FakeStream:
    """``pyaudio.PyAudio.Stream`` of a callback-mode input stream."""

    def __init__(
        self,
        env: FakePyAudioEnv,
        parent: Any,
        rate: int,
        channels: int,
        format: int,
        input: bool,
        output: bool,
        input_device_index: int | None,
        frames_per_buffer: int,
        start: bool,
        stream_callback: Callable[..., tuple[Any, int]] | None,
    ) -> None:
        if not (input or output):
            raise ValueError("Must specify an input or output stream.")
        index = env.default_input if input_device_index is None else input_device_index
        if not 0 <= index < len(env.devices) or env.devices[index]["maxInputChannels"] < channels:
            raise OSError(-9998, "Invalid number of channels")
        if format != paInt16:
            raise ValueError("fake supports paInt16 only")
        self.env = env
        self._parent = parent
        self.rate = rate
        self.channels = channels
        self.device_index = index
        self.frames_per_buffer = frames_per_buffer or 256
        self.callback = stream_callback
        self.active = False
        self.closed = False
        self.aborted: BaseException | None = None
        self.sample_pos = 0  # next frame of the true sample clock
        self.buffers_delivered = 0
        self.callback_thread_ids: set[int] = set()
        self._cb_lock = threading.Lock()
        if start:
            self.start_stream()

    # -- the API ----------------------------------------------------------------------------
    def start_stream(self) -> None:
        self._check_open()
        self.active = True

    def stop_stream(self) -> None:
        self._check_open()
        with self._cb_lock:  # waits for a callback in progress, like Pa_StopStream
            self.active = False

    def close(self) -> None:
        if not self.closed:
            with self._cb_lock:
                self.active = False
                self.closed = True
            self._parent._streams.discard(self)

    def is_active(self) -> bool:
        self._check_open()
        return self.active

    def is_stopped(self) -> bool:
        self._check_open()
        return not self.active

    def get_input_latency(self) -> float:
        return self.frames_per_buffer / self.rate

    def get_time(self) -> float:
        clock = self.env.clock
        return self.env.time_info_now(clock.now_us() if clock else 0)

    def read(self, num_frames: int, exception_on_overflow: bool = True) -> bytes:
        raise OSError(-9977, "Can't read from a callback stream")

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(-9988, "Stream closed")

    # -- the device's side ---------------------------------------------------------------------
    def deliver(
        self,
        buffers: int,
        *,
        ppm: float = 0.0,
        start_us: int = 0,
        lost_before: Mapping[int, int] | None = None,
        overflow_at: Collection[int] = (),
        time_info: bool = True,
    ) -> None:
        """Run ``buffers`` callbacks on a separate thread (waits for them).

        The true sample clock runs at ``rate * (1 + ppm / 1e6)`` from ``start_us`` of the
        env's clock. ``lost_before[k]`` frames are lost before buffer number ``k`` (counted
        from the stream's first buffer), flagged ``paInputOverflow``; ``overflow_at`` flags
        buffers without losing anything. ``time_info=False`` reports zeros, as some ALSA
        plugins do.
        """
        lost_before = dict(lost_before or {})
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._run(buffers, ppm, start_us, lost_before, set(overflow_at), time_info)
            except BaseException as e:  # noqa: BLE001 - reported to the caller
                errors.append(e)

        t = threading.Thread(target=run, name="fake-portaudio")
        t.start()
        t.join()
        if errors:
            raise errors[0]

    def _run(
        self,
        buffers: int,
        ppm: float,
        start_us: int,
        lost_before: dict[int, int],
        overflow_at: set[int],
        with_time_info: bool,
    ) -> None:
        self.callback_thread_ids.add(threading.get_ident())
        true_rate = self.rate * (1 + ppm / 1e6)
        n = self.frames_per_buffer
        for _ in range(buffers):
            k = self.buffers_delivered
            flags = 0
            if k in lost_before:
                self.sample_pos += lost_before[k]
                flags |= paInputOverflow
            if k in overflow_at:
                flags |= paInputOverflow
            first = self.sample_pos
            self.sample_pos += n
            adc_us = start_us + first * 1e6 / true_rate
            now_us = start_us + self.sample_pos * 1e6 / true_rate + self.env.callback_latency_us
            if self.env.clock is not None:
                self.env.clock.set(max(self.env.clock.now_us(), round(now_us)))
            pcm = np.asarray(self.env.source(first, n, true_rate), dtype="<i2")
            if pcm.ndim == 1 and self.channels > 1:
                pcm = np.repeat(pcm[:, None], self.channels, axis=1)
            info = {
                "input_buffer_adc_time": 0.0,
                "current_time": 0.0,
                "output_buffer_dac_time": 0.0,
            }
            if with_time_info:
                info["input_buffer_adc_time"] = self.env.time_info_now(round(adc_us))
                info["current_time"] = self.env.time_info_now(round(now_us))
            with self._cb_lock:
                if not self.active or self.callback is None:
                    return
                try:
                    _, flag = self.callback(pcm.tobytes(), n, info, flags)
                except BaseException as e:  # noqa: BLE001 - PyAudio: print, then paAbort
                    self.aborted = e
                    self.active = False
                    return
                self.buffers_delivered += 1
                if flag != paContinue:
                    self.active = False
                    return


def _build_module(env: FakePyAudioEnv) -> ModuleType:
    class PyAudio:
        """``pyaudio.PyAudio``."""

        Stream = FakeStream

        def __init__(self) -> None:
            self._streams: set[FakeStream] = set()
            self.terminated = False
            env.instances.append(self)

        def terminate(self) -> None:
            for s in list(self._streams):
                s.close()
            self._streams = set()
            self.terminated = True

        def get_sample_size(self, format: int) -> int:
            return {paInt16: 2, paInt32: 4, paFloat32: 4}[format]

        def get_device_count(self) -> int:
            return len(env.devices)

        def get_device_info_by_index(self, device_index: int) -> dict[str, Any]:
            if not 0 <= device_index < len(env.devices):
                raise OSError(-9996, "Invalid device")
            d = env.devices[device_index]
            return {
                "index": device_index,
                "structVersion": 2,
                "hostApi": 0,
                "defaultLowInputLatency": 0.0087,
                "defaultHighInputLatency": 0.035,
                "defaultLowOutputLatency": 0.0087,
                "defaultHighOutputLatency": 0.035,
            } | d

        def get_default_input_device_info(self) -> dict[str, Any]:
            return self.get_device_info_by_index(env.default_input)

        def open(
            self,
            rate: int,
            channels: int,
            format: int,
            input: bool = False,
            output: bool = False,
            input_device_index: int | None = None,
            output_device_index: int | None = None,
            frames_per_buffer: int = paFramesPerBufferUnspecified,
            start: bool = True,
            input_host_api_specific_stream_info: Any = None,
            output_host_api_specific_stream_info: Any = None,
            stream_callback: Callable[..., tuple[Any, int]] | None = None,
        ) -> FakeStream:
            if self.terminated:
                raise OSError(-10000, "PortAudio not initialized")
            s = FakeStream(
                env,
                self,
                rate,
                channels,
                format,
                input,
                output,
                input_device_index,
                frames_per_buffer,
                start,
                stream_callback,
            )
            self._streams.add(s)
            env.streams.append(s)
            return s

    m = ModuleType("pyaudio")
    for name, value in globals().items():
        if name.startswith("pa") and isinstance(value, int):
            setattr(m, name, value)
    m.PyAudio = PyAudio  # type: ignore[attr-defined]
    m.Stream = FakeStream  # type: ignore[attr-defined]
    m.__version__ = "0.2.14"  # type: ignore[attr-defined]
    return m
