"""Camera backends: the interface the daemon drives, and the picamera2 backend for the Pi.

The simulator's twin is :class:`simulator.camera.SimCamera` (poll-driven: the simulator
advances a virtual clock and the camera produces the frames due by then). A hardware camera
pushes instead: picamera2 runs its own threads and hands over each encoded frame, so the
backend here is started with a packet callback and delivers from picamera2's threads.

The capture clock
-----------------
Every packet carries its capture time in microseconds of ONE clock (shared/DESIGN.md,
Principles 1). On the Pi that clock is the kernel's ``CLOCK_MONOTONIC``, because that is what
the sensor timestamps are, whatever libcamera's documentation says:

- libcamera documents ``SensorTimestamp`` (``src/libcamera/control_ids_core.yaml``) as
  nanoseconds of ``CLOCK_BOOTTIME``; but its Raspberry Pi pipeline handlers
  (``src/libcamera/pipeline/rpi/vc4/vc4.cpp`` and ``pisp/pisp.cpp``) copy the V4L2 buffer
  timestamp into it unchanged (``sensorTimestamp = buffer->metadata().timestamp``);
- the Pi's CSI-2 receiver drivers stamp that buffer at frame start with ``ktime_get_ns()``,
  which is ``CLOCK_MONOTONIC``: ``bcm2835-unicam.c`` (Pi 0-4) and ``rp1_cfe/cfe.c``
  (Pi 5, ``node->ts = ktime_get_ns()`` in ``cfe_sof_isr_handler``);
- picamera2 itself compares ``SensorTimestamp`` with ``time.monotonic_ns()``
  (``Picamera2.capture_request(flush=True)``).

The two clocks differ only by time spent suspended, which a Pi does not do; if they ever
did differ, MONOTONIC is the one the frames carry. :func:`capture_clock` returns the clock
the whole daemon must use (microphone, buttons, recorder) so that the sensor timestamps need
no translation beyond subtracting the origin.

What picamera2 hands its outputs
--------------------------------
``Encoder._timestamp(request)`` (``picamera2/encoders/encoder.py``) reads
``request.request.metadata[SensorTimestamp]`` (ns), converts it with ``int(ns / 1000)`` to
microseconds and subtracts ``encoder.firsttimestamp``, the first frame's value, which it sets
when the encoder starts. That *relative* microsecond count is the ``timestamp`` every
``Output.outputframe(frame, keyframe, timestamp, packet, audio)`` receives: on a Pi 0-4 the
V4L2 encoder round-trips it through the ``v4l2_buffer.timestamp`` of the encoded buffer and
calls the outputs from its own poll thread; on a Pi 5 ``LibavH264Encoder`` sets it as the
frame's pts (time base 1/1,000,000) and calls the outputs from the camera thread with
``packet.pts``. Either way ``timestamp + encoder.firsttimestamp`` is the sensor time in
microseconds, and minus the clock origin it is capture time.

Which H.264 encoder
-------------------
``picamera2.encoders.H264Encoder`` is the V4L2 hardware encoder (``/dev/video11``) when
``picamera2.platform.get_platform()`` is ``VC4`` (Pi 0-4) and is *an alias of*
``LibavH264Encoder`` (libx264 through PyAV, ``preset=ultrafast``, ``tune=zerolatency``)
on ``PISP`` (Pi 5, which has no hardware encoder). Both take ``bitrate``, ``repeat``,
``iperiod`` and ``framerate``; with ``repeat=True`` both put SPS/PPS in front of every
keyframe (V4L2 ``REPEAT_SEQ_HEADER``; libx264 without ``GLOBAL_HEADER``), which the ring
buffer needs (picamera2 issue 226). :attr:`Picamera2Camera.encoder_kind` says which one runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from base.clock import WallClock
from base.packets import Packet, Stream
from capture.faults import FaultCallback, FaultReporter
from capture.overlay import Overlay

log = logging.getLogger("bwv.camera")

CAPTURE_CLOCK_ID: int = time.CLOCK_MONOTONIC
"""The kernel clock of the sensor timestamps on the Pi (see the module docstring)."""

PacketCallback = Callable[[Packet], None]


# -- the capture clock ------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelClock:
    """Capture time read from a kernel clock: microseconds since ``origin_ns``.

    It implements :class:`base.clock.Clock`, and converts the kernel's own timestamps
    (sensor timestamps, PortAudio's times) onto the same scale.
    """

    origin_ns: int
    clock_id: int = CAPTURE_CLOCK_ID

    def now_us(self) -> int:
        return (time.clock_gettime_ns(self.clock_id) - self.origin_ns) // 1000

    def from_kernel_ns(self, t_ns: int) -> int:
        """Capture time (µs) of the kernel timestamp ``t_ns`` of this clock."""
        return (t_ns - self.origin_ns) // 1000

    def from_kernel_us(self, t_us: int) -> int:
        """Capture time (µs) of the kernel timestamp ``t_us`` (microseconds) of this clock."""
        return t_us - self.origin_ns // 1000


def capture_clock() -> KernelClock:
    """The daemon's one capture clock: ``CLOCK_MONOTONIC``, zero at the moment of the call."""
    return KernelClock(origin_ns=time.clock_gettime_ns(CAPTURE_CLOCK_ID))


def sensor_timestamp_us(sensor_timestamp_ns: int) -> int:
    """picamera2's own conversion of ``SensorTimestamp`` (``Encoder._timestamp``), so that
    the overlay's time and the packet's time of one frame are the same integer."""
    return int(sensor_timestamp_ns / 1000)


# -- the interface ----------------------------------------------------------------------------


class VideoParams(Protocol):
    """What a camera backend needs of the video configuration (:class:`capture.config.VideoConfig`
    fits)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def fps(self) -> int: ...
    @property
    def bitrate(self) -> int: ...
    @property
    def gop(self) -> int: ...


class CameraBackend(Protocol):
    """A camera that pushes encoded H.264 packets (Annex B, SPS/PPS on every keyframe),
    stamped with capture time and frame index, from its own thread(s).

    ``frames_delivered`` counts packets handed to ``on_packet`` (the watchdog's heartbeat);
    ``fault`` is ``None`` or the first fault seen, also reported to the ``on_fault`` callback
    given to the backend. A fault is never raised into the camera's threads.
    """

    frames_delivered: int

    @property
    def fault(self) -> str | None: ...

    def start(self, on_packet: PacketCallback) -> None: ...

    def stop(self) -> None: ...


# -- frame index from sensor timestamps ---------------------------------------------------------


@dataclass
class FrameIndexer:
    """Frame index of each delivered frame, skipping like a sensor sequence number where
    frames were dropped: a gap of more than 1.5 frame intervals between two delivered frames
    counts ``round(gap / interval) - 1`` frames lost. Index 0 is the first delivered frame.

    (The V4L2 driver's sequence number is not in picamera2's metadata, but the drivers
    timestamp every frame start, including those they drop for want of a buffer, so the gaps
    carry the same information.)
    """

    interval_us: int
    dropped: int = 0
    _last_index: int = -1
    _last_us: int | None = None

    def index_for(self, t_us: int) -> int:
        if self._last_us is None:
            index = 0
        else:
            gap = t_us - self._last_us
            steps = 1
            if 2 * gap > 3 * self.interval_us:
                steps = max(2, round(gap / self.interval_us))
                self.dropped += steps - 1
            index = self._last_index + steps
        self._last_index, self._last_us = index, t_us
        return index


# -- the picamera2 backend ----------------------------------------------------------------------


class Picamera2Camera:
    """The Pi camera through picamera2: H.264 at ``video.bitrate``, a keyframe every
    ``video.gop`` frames with SPS/PPS repeated, ``video.fps`` fixed by
    ``FrameDurationLimits``, the overlay burned into each frame before it is encoded.

    - The main stream is ``YUV420`` at ``video.width`` x ``video.height`` (the format both
      encoders take without conversion); no lores or raw stream is used.
    - The overlay is drawn in picamera2's ``pre_callback`` (camera thread, before the
      encoder sees the request) on the luma plane through ``MappedArray(request, "main")``,
      with the wall time of that frame's capture time.
    - Encoded frames reach bwv's own ``picamera2.outputs.Output`` subclass, which wraps each
      in a :class:`Packet`: capture time = sensor time - clock origin, nominal duration,
      picamera2's keyframe flag, frame index from :class:`FrameIndexer`.

    picamera2 is imported in :meth:`start`, never at module import.
    """

    def __init__(
        self,
        video: VideoParams,
        overlay: Overlay,
        wall: WallClock,
        clock: KernelClock,
        *,
        camera_num: int = 0,
        buffer_count: int = 6,
        on_fault: FaultCallback | None = None,
    ) -> None:
        if video.fps <= 0 or video.gop <= 0:
            raise ValueError("fps and gop must be positive")
        self.video = video
        self.overlay = overlay
        self.wall = wall
        self.clock = clock
        self.camera_num = camera_num
        self.buffer_count = buffer_count
        self._faults = FaultReporter("camera", log, on_fault)
        self.interval_us = 1_000_000 // video.fps
        self.frames_delivered = 0
        self.frames_captured = 0  # requests that went through the pre_callback
        self.encoder_kind: str | None = None  # "v4l2" (Pi 0-4) or "libx264" (Pi 5)
        self.size: tuple[int, int] = (video.width, video.height)
        self._indexer = FrameIndexer(self.interval_us)
        self._on_packet: PacketCallback | None = None
        self._picam2: Any = None
        self._encoder: Any = None
        self._mapped_array: Any = None
        self._first_sensor_us: int | None = None
        self._lock = threading.Lock()

    @property
    def dropped_frames(self) -> int:
        """Frames the sensor produced but that never reached us (timestamp gaps)."""
        return self._indexer.dropped

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, on_packet: PacketCallback) -> None:
        if self._picam2 is not None:
            raise RuntimeError("camera already started")
        from picamera2 import MappedArray, Picamera2
        from picamera2.encoders import H264Encoder, LibavH264Encoder
        from picamera2.outputs import Output

        self._on_packet = on_packet
        self._mapped_array = MappedArray
        v = self.video
        picam2 = Picamera2(self.camera_num)
        self._picam2 = picam2
        try:
            config = picam2.create_video_configuration(
                main={"size": (v.width, v.height), "format": "YUV420"},
                controls={"FrameDurationLimits": (self.interval_us, self.interval_us)},
                buffer_count=self.buffer_count,
            )
            picam2.configure(config)
            main = picam2.camera_config["main"]
            self.size = tuple(main["size"])
            if self.size != (v.width, v.height):
                log.warning("camera gives %sx%s for the %sx%s asked", *self.size, v.width, v.height)
            encoder = H264Encoder(bitrate=v.bitrate, repeat=True, iperiod=v.gop, framerate=v.fps)
            self.encoder_kind = "libx264" if isinstance(encoder, LibavH264Encoder) else "v4l2"
            self._encoder = encoder
            picam2.pre_callback = self._pre_callback
            picam2.start_recording(encoder, _make_output(Output, self._on_encoded))
        except BaseException:
            self._close_quietly()
            raise
        log.info(
            "camera %d: %sx%s at %d fps, %d bit/s, keyframe every %d, encoder %s",
            self.camera_num,
            *self.size,
            v.fps,
            v.bitrate,
            v.gop,
            self.encoder_kind,
        )

    def stop(self) -> None:
        """Stop recording (the encoder flushes what it holds to the output) and close."""
        picam2, self._picam2 = self._picam2, None
        if picam2 is None:
            return
        try:
            picam2.stop_recording()
        finally:
            picam2.close()

    def _close_quietly(self) -> None:
        picam2, self._picam2 = self._picam2, None
        try:
            picam2.close()
        except Exception:  # noqa: BLE001 - already failing; keep the first error
            log.exception("closing the camera after a failed start")

    # -- picamera2's threads ----------------------------------------------------------------

    def _pre_callback(self, request: Any) -> None:
        """Camera thread, before the encoder: burn the overlay into the luma plane."""
        try:
            t_ns = request.get_metadata()["SensorTimestamp"]
            t_us = self.clock.from_kernel_us(sensor_timestamp_us(t_ns))
            if self._first_sensor_us is None:
                self._first_sensor_us = sensor_timestamp_us(t_ns)
            w, h = self.size
            with self._mapped_array(request, "main") as m:
                self.overlay.draw(m.array[:h, :w], self.wall.wall_us(t_us))
            self.frames_captured += 1
        except Exception as e:  # noqa: BLE001 - never into picamera2's loop
            self._fail(f"overlay: {type(e).__name__}: {e}")

    def _on_encoded(self, frame: Any, keyframe: bool, timestamp: int | None, audio: bool) -> None:
        """Encoder's output thread: wrap the encoded frame as a packet and hand it on."""
        if audio or frame is None:
            return  # picamera2's own audio path is not used: the microphone backend is
        try:
            if timestamp is None:
                raise ValueError("encoder gave no timestamp")
            first = getattr(self._encoder, "firsttimestamp", None)
            if first is None:
                first = self._first_sensor_us
            if first is None:
                raise ValueError("no first sensor timestamp to anchor the encoder's times")
            t_us = self.clock.from_kernel_us(first + int(timestamp))
            with self._lock:
                index = self._indexer.index_for(t_us)
            packet = Packet(
                Stream.VIDEO, t_us, self.interval_us, bool(keyframe), bytes(frame), index
            )
            assert self._on_packet is not None
            self._on_packet(packet)
            self.frames_delivered += 1
        except Exception as e:  # noqa: BLE001 - never into picamera2's threads
            self._fail(f"output: {type(e).__name__}: {e}")

    @property
    def fault(self) -> str | None:
        return self._faults.fault

    def _fail(self, reason: str) -> None:
        self._faults.report(reason)


def _make_output(
    output_base: type, on_encoded: Callable[[Any, bool, int | None, bool], None]
) -> object:
    """An instance of bwv's subclass of ``picamera2.outputs.Output`` (picamera2's encoders
    accept only ``Output`` instances, so the class is made once picamera2 is imported)."""

    # picamera2 has no type information: its Output is Any to mypy
    class BwvOutput(output_base):  # type: ignore[misc]
        """Receives every encoded frame: ``outputframe(frame, keyframe, timestamp, packet,
        audio)`` as picamera2's ``Output`` defines it."""

        def outputframe(
            self,
            frame: Any,
            keyframe: bool = True,
            timestamp: int | None = None,
            packet: Any = None,
            audio: bool = False,
        ) -> None:
            on_encoded(frame, keyframe, timestamp, audio)

    return BwvOutput()
