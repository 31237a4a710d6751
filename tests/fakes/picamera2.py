"""A fake picamera2: the part of its API bwv uses, behaving like the real one.

It mirrors raspberrypi/picamera2 (read at 0.3.x, ``picamera2/``):

- ``Picamera2(camera_num=0, verbose_console=None, tuning=None, allocator=None)``;
  ``create_video_configuration(main={}, lores=None, raw={}, transform=..., colour_space=None,
  buffer_count=6, controls={}, display="main", encode="main", queue=True, sensor={},
  use_case="video")`` returning a dict whose ``main`` defaults to ``XBGR8888`` 1280x720 and
  whose ``controls`` default to ``FrameDurationLimits: (33333, 33333)``; ``configure(config)``;
  ``camera_config``; ``start()``, ``stop()``, ``close()``;
  ``start_encoder(encoder=None, output=None, pts=None, quality=None, name=None)`` (sets the
  encoder's output, name, size, format and stride from the configured stream, then
  ``encoder.start(quality=...)``); ``stop_encoder()``; ``start_recording(encoder, output,
  pts=None, config=None, quality=None, name=None)`` = configure if asked, start_encoder, start;
  ``stop_recording()`` = stop, stop_encoder; ``pre_callback``/``post_callback`` called for each
  completed request in the camera thread, pre before any encoder sees it
  (``Picamera2._process_requests``).
- ``encoders.Encoder``: ``output`` accepts only ``outputs.Output`` instances (RuntimeError
  "Must pass Output"); ``_timestamp(request)`` is ``int(SensorTimestamp / 1000)`` minus
  ``firsttimestamp`` (set on the first frame after ``start``); ``outputframe(frame, keyframe,
  timestamp, packet, audio)`` calls every output's ``outputframe``.
- ``encoders.H264Encoder(bitrate=None, repeat=True, iperiod=None, framerate=None,
  enable_sps_framerate=False, qp=None, profile=None)``: on a ``"vc4"`` platform the V4L2
  encoder, which delivers from its own poll thread with the relative timestamp it queued;
  on ``"pisp"`` (Pi 5) the name is bound to ``LibavH264Encoder(bitrate=None, repeat=True,
  iperiod=30, framerate=30, qp=None, profile=None)``, which encodes in the camera thread and
  delivers ``packet.pts`` (time base 1/1,000,000) and flushes on stop
  (``picamera2/encoders/__init__.py``).
- ``outputs.Output(pts=None)`` with ``start``, ``stop``, ``outputframe``.
- ``MappedArray(request, stream, reshape=True, write=True)``: a context manager whose
  ``array`` is the stream's buffer, for ``YUV420`` shaped ``(height * 3 // 2, stride)``
  (``request.py``, ``_make_array_shared``), writable in place.

Both fake encoders make real H.264 with libx264 through PyAV, set up the way picamera2's
``LibavH264Encoder`` does (ultrafast, zerolatency, gop = iperiod, SPS/PPS repeated on
keyframes when ``repeat``); the fake sensor draws the simulator's test pattern (frame-index
strip = sensor sequence number) so a test can read back what was encoded.

Drive it with :meth:`FakePicamera2.run`: ``frames`` sensor frames at the configured frame
duration from ``sensor_start_ns`` (plus a deterministic jitter), skipping (dropping) the
sequence numbers in ``drop``, as the real sensor's frame-start timestamps keep counting
through frames the driver had no buffer for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from fractions import Fraction
from types import ModuleType, SimpleNamespace
from typing import Any

import av
import numpy as np

from simulator.pattern import draw_background, draw_marks


def default_jitter_ns(sequence: int) -> int:
    """A few hundred microseconds of deterministic timestamp jitter, like a real sensor's."""
    return ((sequence * 7919) % 401 - 200) * 1000


@dataclass
class FakePicamera2Env:
    platform: str = "vc4"  # "vc4" (Pi 0-4, V4L2 encoder) or "pisp" (Pi 5, libx264)
    sensor_start_ns: int = 5_000_000_000
    jitter_ns: Callable[[int], int] = default_jitter_ns
    stride_pad: int = 64  # bytes of padding on each row, so adapters must slice by width
    cameras: list[Any] = field(default_factory=list)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.platform not in ("vc4", "pisp"):
            raise ValueError("platform is 'vc4' or 'pisp'")
        self.modules = _build_modules(self)

    @property
    def camera(self) -> FakePicamera2:
        (cam,) = self.cameras
        return cam


def make_fake_picamera2(**kwargs: Any) -> FakePicamera2Env:
    return FakePicamera2Env(**kwargs)


# -- requests and buffers --------------------------------------------------------------------


class FakeCompletedRequest:
    """``picamera2.request.CompletedRequest``: ``request.metadata``, ``get_metadata()``,
    ``config``, ``acquire``/``release``."""

    def __init__(
        self, picam2: FakePicamera2, sequence: int, metadata: dict[str, Any], buffer: np.ndarray
    ) -> None:
        self.picam2 = picam2
        self.config = dict(picam2.camera_config)
        self.stream_map = {"main": "main"}
        self.request = SimpleNamespace(metadata=metadata, sequence=sequence)
        self.buffers = {"main": buffer}
        self.ref_count = 1

    def get_metadata(self) -> dict[str, Any]:
        return dict(self.request.metadata)

    def acquire(self) -> None:
        self.ref_count += 1

    def release(self) -> None:
        if self.ref_count <= 0:
            raise RuntimeError("request released too often")
        self.ref_count -= 1


class MappedArray:
    """``picamera2.request.MappedArray``."""

    def __init__(
        self, request: FakeCompletedRequest, stream: str, reshape: bool = True, write: bool = True
    ) -> None:
        self._request = request
        self._stream = stream
        self._reshape = reshape
        self._array: np.ndarray | None = None

    def __enter__(self) -> MappedArray:
        buf = self._request.buffers[self._stream]
        self._array = buf if self._reshape else buf.reshape(-1)
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, exc_traceback: Any) -> None:
        self._array = None

    @property
    def array(self) -> np.ndarray | None:
        return self._array


def _i420_to_yuv420p(array: np.ndarray, w: int, h: int) -> np.ndarray:
    """A ``YUV420`` buffer with row padding (``(h * 3 // 2, stride)``) as packed yuv420p."""
    stride = array.shape[1]
    flat = array.reshape(-1)
    y = flat[: h * stride].reshape(h, stride)[:, :w]
    c = (h // 2) * (stride // 2)
    u = flat[h * stride : h * stride + c].reshape(h // 2, stride // 2)[:, : w // 2]
    v = flat[h * stride + c : h * stride + 2 * c].reshape(h // 2, stride // 2)[:, : w // 2]
    return np.concatenate(
        [y, np.ascontiguousarray(u).reshape(h // 4, w), np.ascontiguousarray(v).reshape(h // 4, w)]
    )


class _X264:
    """libx264 the way picamera2's LibavH264Encoder sets it up."""

    def __init__(
        self,
        width: int,
        height: int,
        bitrate: int | None,
        iperiod: int | None,
        framerate: float | None,
        repeat: bool,
    ) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, 1_000_000)
        ctx.framerate = Fraction(framerate or 30).limit_denominator(1000)
        ctx.gop_size = iperiod or (1 << 31) - 1
        ctx.max_b_frames = 0
        if bitrate:
            ctx.bit_rate = bitrate
        ctx.thread_count = 1
        if not repeat:
            ctx.flags |= av.codec.context.Flags.GLOBAL_HEADER
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "deblock": "1"}
        ctx.open()
        self._ctx = ctx

    def encode(self, yuv: np.ndarray | None, pts: int | None) -> list[Any]:
        if yuv is None:
            return list(self._ctx.encode(None))
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts
        frame.time_base = self._ctx.time_base
        return list(self._ctx.encode(frame))


# -- the modules -----------------------------------------------------------------------------


def _build_modules(env: FakePicamera2Env) -> dict[str, ModuleType]:
    class Output:
        """``picamera2.outputs.Output``."""

        def __init__(self, pts: Any = None) -> None:
            self.recording = False
            self.ptsoutput = pts
            self.needs_pacing = False
            self.needs_add_stream = False

        def start(self) -> None:
            self.recording = True

        def stop(self) -> None:
            self.recording = False

        def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
            pass

        def _add_stream(self, encoder_stream, *args, **kwargs):
            pass

    class Encoder:
        """``picamera2.encoders.Encoder``."""

        def __init__(self, framerate: float = 30) -> None:
            self.width = 0
            self.height = 0
            self.stride = 0
            self.format: str | None = None
            self.name: str | None = None
            self._output: list[Output] = []
            self._running = False
            self._lock = threading.Lock()
            self._output_lock = threading.Lock()
            self.firsttimestamp: int | None = None
            self.frames_encoded = 0
            self.audio = False

        @property
        def running(self) -> bool:
            return self._running

        @property
        def output(self) -> Any:
            return self._output[0] if len(self._output) == 1 else self._output

        @output.setter
        def output(self, value: Any) -> None:
            values = value if isinstance(value, list) else [value]
            for out in values:
                if not isinstance(out, Output):
                    raise RuntimeError("Must pass Output")
            self._output = values

        def start(self, quality: Any = None) -> None:
            with self._lock:
                if self._running:
                    raise RuntimeError("Encoder already running")
                self.frames_encoded = 0
                self._running = True
                self.firsttimestamp = None
                for out in self._output:
                    out.start()
                self._start()

        def stop(self) -> None:
            with self._lock:
                if not self._running:
                    raise RuntimeError("Encoder already stopped")
                self._running = False
                self._stop()
                for out in self._output:
                    out.stop()

        def encode(self, stream: str, request: FakeCompletedRequest) -> None:
            with self._lock:
                if not self._running:
                    return
                self._encode(stream, request)
            self.frames_encoded += 1

        def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
            with self._output_lock:
                for out in self._output:
                    out.outputframe(frame, keyframe, timestamp, packet, audio)

        def _timestamp(self, request: FakeCompletedRequest) -> int:
            ts = int(request.request.metadata["SensorTimestamp"] / 1000)  # ns to us
            if self.firsttimestamp is None:
                self.firsttimestamp = ts
                return 0
            return ts - self.firsttimestamp

        def _yuv(self, request: FakeCompletedRequest, stream: str) -> np.ndarray:
            with MappedArray(request, stream) as m:
                assert m.array is not None
                return _i420_to_yuv420p(m.array, self.width, self.height)

        def _start(self) -> None:
            pass

        def _stop(self) -> None:
            pass

        def _encode(self, stream: str, request: FakeCompletedRequest) -> None:
            raise NotImplementedError

    class LibavH264Encoder(Encoder):
        """``picamera2.encoders.LibavH264Encoder`` (Pi 5): encodes in the camera thread."""

        def __init__(
            self, bitrate=None, repeat=True, iperiod=30, framerate=30, qp=None, profile=None
        ) -> None:
            super().__init__()
            self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
            self.framerate, self.qp, self.profile = framerate, qp, profile
            self._x264: _X264 | None = None

        def _start(self) -> None:
            if self.format not in ("YUV420",):
                raise RuntimeError(f"fake supports YUV420 only, not {self.format}")
            self._x264 = _X264(
                self.width, self.height, self.bitrate, self.iperiod, self.framerate, self.repeat
            )

        def _encode(self, stream: str, request: FakeCompletedRequest) -> None:
            assert self._x264 is not None
            ts = self._timestamp(request)
            for p in self._x264.encode(self._yuv(request, stream), ts):
                self.outputframe(bytes(p), p.is_keyframe, timestamp=p.pts, packet=p)

        def _stop(self) -> None:
            assert self._x264 is not None
            for p in self._x264.encode(None, None):
                self.outputframe(bytes(p), p.is_keyframe, timestamp=p.pts, packet=p)

    class V4L2H264Encoder(Encoder):
        """``picamera2.encoders.H264Encoder`` on a Pi 0-4 (V4L2): frames are queued to the
        codec and the encoded buffers come back on the encoder's poll thread, carrying the
        timestamp they were queued with."""

        def __init__(
            self,
            bitrate=None,
            repeat=True,
            iperiod=None,
            framerate=None,
            enable_sps_framerate=False,
            qp=None,
            profile=None,
        ) -> None:
            super().__init__()
            self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
            self.framerate, self.qp, self.profile = framerate, qp, profile
            self._x264: _X264 | None = None
            self._frames: queue.Queue[tuple[np.ndarray, int, FakeCompletedRequest] | None]
            self._thread: threading.Thread | None = None
            self.poll_thread_ids: set[int] = set()

        def _start(self) -> None:
            if self.format not in ("YUV420",):
                raise RuntimeError(f"fake supports YUV420 only, not {self.format}")
            self._x264 = _X264(
                self.width, self.height, self.bitrate, self.iperiod, self.framerate, self.repeat
            )
            self._frames = queue.Queue()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

        def _encode(self, stream: str, request: FakeCompletedRequest) -> None:
            request.acquire()
            ts = self._timestamp(request)
            self._frames.put((self._yuv(request, stream), ts, request))

        def _poll(self) -> None:
            assert self._x264 is not None
            self.poll_thread_ids.add(threading.get_ident())
            while (item := self._frames.get()) is not None:
                yuv, ts, request = item
                for p in self._x264.encode(yuv, ts):
                    self.outputframe(bytes(p), p.is_keyframe, p.pts)
                request.release()

        def _stop(self) -> None:
            self._frames.put(None)
            assert self._thread is not None
            self._thread.join()

    H264Encoder = V4L2H264Encoder if env.platform == "vc4" else LibavH264Encoder

    class Picamera2:
        """``picamera2.Picamera2``; :meth:`run` plays the sensor."""

        def __init__(
            self, camera_num: int = 0, verbose_console=None, tuning=None, allocator=None
        ) -> None:
            self.camera_num = camera_num
            self.camera_config: dict[str, Any] | None = None
            self.pre_callback: Callable[[FakeCompletedRequest], None] | None = None
            self.post_callback: Callable[[FakeCompletedRequest], None] | None = None
            self._encoders: set[Any] = set()
            self.started = False
            self.closed = False
            self.sequence = 0
            self.requests: list[FakeCompletedRequest] = []
            self.encode_stream_name = "main"
            env.cameras.append(self)

        # configuration
        def create_video_configuration(  # picamera2's own {} defaults (never mutated here)
            self,
            main={},  # noqa: B006
            lores=None,
            raw={},  # noqa: B006
            transform=None,
            colour_space=None,
            buffer_count=6,
            controls={},  # noqa: B006
            display="main",
            encode="main",
            queue=True,
            sensor={},  # noqa: B006
            use_case="video",
        ) -> dict[str, Any]:
            """(picamera2's default ``transform`` is ``libcamera.Transform()``: ``None`` here.)"""
            self._check_open()
            main = {"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True} | dict(
                main or {}
            )
            controls = {"FrameDurationLimits": (33333, 33333)} | dict(controls or {})
            return {
                "use_case": use_case,
                "transform": transform,
                "colour_space": colour_space,
                "buffer_count": buffer_count,
                "queue": queue,
                "display": display,
                "encode": encode,
                "lores": lores,
                "raw": raw or {},
                "sensor": sensor or {},
                "main": main,
                "controls": controls,
            }

        def configure(self, camera_config: Any = None) -> None:
            self._check_open()
            if self.started:
                raise RuntimeError("Camera must be stopped before configuring")
            if camera_config is None or isinstance(camera_config, str):
                camera_config = self.create_video_configuration()
            config = dict(camera_config)
            main = dict(config["main"])
            w, h = main["size"]
            if main["format"] != "YUV420":
                raise RuntimeError("fake camera supports YUV420 only")
            stride = -(-w // 64) * 64 + env.stride_pad
            main.update(stride=stride, framesize=stride * h * 3 // 2)
            config["main"] = main
            self.camera_config = config
            self.encode_stream_name = config["encode"]

        def camera_configuration(self) -> dict[str, Any] | None:
            return self.camera_config

        # encoders
        def start_encoder(self, encoder=None, output=None, pts=None, quality=None, name=None):
            if encoder is None:
                raise RuntimeError("No encoder specified")
            if output is not None:
                encoder.output = output
            streams = self.camera_configuration()
            if not streams:
                raise RuntimeError("Camera has not been configured")
            name = name or self.encode_stream_name
            if streams.get(name) is None:
                raise RuntimeError(f"Encode stream {name} was not defined")
            encoder.name = name
            encoder.width, encoder.height = streams[name]["size"]
            encoder.format = streams[name]["format"]
            encoder.stride = streams[name]["stride"]
            if getattr(encoder, "framerate", None) is None:
                encoder.framerate = 30
            encoder.start(quality=quality)
            self._encoders.add(encoder)

        def stop_encoder(self, encoders=None) -> None:
            for encoder in list(self._encoders):
                encoder.stop()
            self._encoders.clear()

        @property
        def encoders(self) -> set[Any]:
            return self._encoders

        # camera
        def start(self, config=None, show_preview=False) -> None:
            self._check_open()
            if config is not None:
                self.configure(config)
            if self.camera_config is None:
                raise RuntimeError("Camera has not been configured")
            self.started = True

        def stop(self) -> None:
            self.started = False

        def start_recording(
            self, encoder, output, pts=None, config=None, quality=None, name=None
        ) -> None:
            if not self.camera_config and config is None:
                config = "video"
            if config is not None:
                self.configure(config)
            self.start_encoder(encoder, output, pts=pts, quality=quality, name=name)
            self.start()

        def stop_recording(self) -> None:
            self.stop()
            self.stop_encoder()

        def close(self) -> None:
            if self.started:
                self.stop()
            self.closed = True

        def _check_open(self) -> None:
            if self.closed:
                raise RuntimeError("Camera not opened")

        # the sensor
        @property
        def frame_duration_us(self) -> int:
            assert self.camera_config is not None
            return int(self.camera_config["controls"]["FrameDurationLimits"][0])

        def sensor_timestamp_ns(self, sequence: int) -> int:
            return (
                env.sensor_start_ns
                + sequence * self.frame_duration_us * 1000
                + env.jitter_ns(sequence)
            )

        def run(self, frames: int, drop: Collection[int] = ()) -> None:
            """Play ``frames`` sensor frames in the calling thread (as picamera2's camera
            thread would), losing those whose sequence number is in ``drop``."""
            if not self.started:
                raise RuntimeError("camera not started")
            assert self.camera_config is not None
            main = self.camera_config["main"]
            w, h = main["size"]
            stride = main["stride"]
            for _ in range(frames):
                seq = self.sequence
                self.sequence += 1
                if seq in drop:
                    continue
                buf = np.full((h * 3 // 2, stride), 128, dtype=np.uint8)
                luma = buf[:h, :w]
                draw_background(luma, seq)
                draw_marks(luma, seq, False)
                buf[:h, w:] = 0  # padding the adapter must not draw on
                request = FakeCompletedRequest(
                    self,
                    seq,
                    {
                        "SensorTimestamp": self.sensor_timestamp_ns(seq),
                        "FrameDuration": self.frame_duration_us,
                    },
                    buf,
                )
                self.requests.append(request)
                if self.pre_callback:
                    self.pre_callback(request)
                if self.post_callback:
                    self.post_callback(request)
                for encoder in list(self._encoders):
                    if encoder.name in self.camera_config:
                        encoder.encode(encoder.name, request)
                request.release()

    top = ModuleType("picamera2")
    top.Picamera2 = Picamera2  # type: ignore[attr-defined]
    top.MappedArray = MappedArray  # type: ignore[attr-defined]
    top.CompletedRequest = FakeCompletedRequest  # type: ignore[attr-defined]
    encoders = ModuleType("picamera2.encoders")
    encoders.Encoder = Encoder  # type: ignore[attr-defined]
    encoders.H264Encoder = H264Encoder  # type: ignore[attr-defined]
    encoders.LibavH264Encoder = LibavH264Encoder  # type: ignore[attr-defined]
    outputs = ModuleType("picamera2.outputs")
    outputs.Output = Output  # type: ignore[attr-defined]
    top.encoders = encoders  # type: ignore[attr-defined]
    top.outputs = outputs  # type: ignore[attr-defined]
    return {"picamera2": top, "picamera2.encoders": encoders, "picamera2.outputs": outputs}


FakePicamera2 = Any  # the class is built per environment; see FakePicamera2Env.camera
