"""The simulated device: the same recorder as on the Pi, with simulated camera, microphone,
button, LEDs and haptic, driven by one clock.

``step(now_us)`` lets every simulated part catch up to ``now_us``. In virtual time the driver
jumps the clock frame by frame (faster than real time, deterministic); in real-time mode it
sleeps until the wall clock reaches each step, the time the camera's next frame is due
(the only place anything waits on real time; the clock and the sleep are injectable).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from capture.clock import OffsetWallClock, VirtualClock
from capture.config import Config
from capture.device import DeviceCore, controls_config, recorder_config
from capture.overlay import Overlay
from capture.recorder import Event, EventKind, Recorder
from capture.sink import PlainFileSink, SegmentSink
from capture.storage import LocalStorage
from gpio.controls import OfficerControls
from gpio.sim import SimPinBackend
from simulator.camera import SimCamera
from simulator.keys import SimKeys, sim_keys
from simulator.microphone import SimMicrophone

log = logging.getLogger("bwv.sim")


@dataclass
class SimDevice:
    cfg: Config
    storage: LocalStorage
    boot_us: int = 1_000_000  # the camera delivers its first frame this long after power-on
    wall_epoch_us: int = 1_790_000_000_000_000  # wall time at capture time 0
    realtime: bool = False
    sink: SegmentSink | None = None
    keys: SimKeys | None = None  # the simulator's throwaway identities (evidence sink)
    events: list[Event] = field(default_factory=list)
    on_event: Callable[[Event], None] | None = None
    # real-time mode only: the wall clock it paces against, and how it waits (injectable)
    monotonic_us: Callable[[], int] = field(default=lambda: time.monotonic_ns() // 1000)
    sleep: Callable[[float], None] = field(default=time.sleep)

    def __post_init__(self) -> None:
        self.now_us = 0
        self.clock = VirtualClock()
        self.pins = SimPinBackend(self.clock)
        self.controls = OfficerControls(self.pins, controls_config(self.cfg))
        self.wall = OffsetWallClock(self.wall_epoch_us)
        self.rcfg = recorder_config(self.cfg)
        if self.sink is None:
            self.sink = PlainFileSink(self.storage)
        self.recovered = self.sink.recover()
        self.microphone = (
            SimMicrophone(self.rcfg.audio, self._packet, start_us=self.boot_us)
            if self.rcfg.audio
            else None
        )
        self.recorder = Recorder(
            self.rcfg,
            self.sink,
            self.wall,
            audio_extradata=self.microphone.encoder.extradata if self.microphone else b"",
            free_bytes=self.storage.free_bytes,
            on_event=lambda e: self.core.event(e),
        )
        self.core = DeviceCore(self.recorder, self.controls, on_event=self._event)
        for path in self.recovered:
            self._event(Event(EventKind.RECOVERED, 0, str(path)))
        v = self.cfg.video
        self.camera = SimCamera(
            self.rcfg.video,
            v.bitrate,
            v.gop,
            Overlay(self.cfg.device_id),
            self.wall,
            self._packet,
            start_us=self.boot_us,
            drop_late=self.realtime,
        )

    def _packet(self, p) -> None:
        self.recorder.on_packet(p)

    def _event(self, e: Event) -> None:
        self.events.append(e)
        if self.on_event:
            self.on_event(e)

    # -- the officer's hand ---------------------------------------------------------------
    def button(self, down: bool) -> None:
        """Press (``down``) or release the record button now."""
        self.pins.drive(self.cfg.pins.button, not down, self.now_us)  # active low

    # -- time ------------------------------------------------------------------------------
    def step(self, now_us: int) -> None:
        self.now_us = now_us
        self.clock.set(now_us)
        self.core.tick(now_us)
        if now_us < self.boot_us:
            return
        if self.microphone:
            self.microphone.poll(now_us)
        self.camera.poll(now_us)

    def run_until(self, t_us: int, tick_us: int | None = None) -> None:
        """Advance to ``t_us`` one frame interval at a time (in real time when realtime)."""
        tick = tick_us or 1_000_000 // self.cfg.video.fps
        origin_wall = self.monotonic_us() - self.now_us if self.realtime else 0
        t = self.now_us
        while t < t_us:
            t = min(self._next_step(t, tick), t_us)
            if self.realtime:
                lag = origin_wall + t - self.monotonic_us()
                if lag > 0:
                    self.sleep(lag / 1_000_000)
                # a real-time device captures at the real time it has reached
                self.step(max(t, self.monotonic_us() - origin_wall))
                t = self.now_us
            else:
                self.step(t)

    def _next_step(self, t: int, tick: int) -> int:
        """In real time, wake when the camera's next frame is due, as a sensor hands a frame
        over when it is exposed: a step between two frames would leave the next one waiting
        for up to a frame interval before it is even looked at, and eat into the two
        intervals a late frame has before the camera drops it."""
        if not self.realtime:
            return t + tick
        due = self.camera.frame_time(self.camera.next_index)
        return due if t < due <= t + tick else t + tick

    def shutdown(self) -> None:
        self.core.shutdown()


def make_device(
    cfg: Config,
    state_dir: Path,
    realtime: bool = False,
    agency_dir: Path | None = None,
    tpm_tcti: str | None = None,
    tpm_ca_certs: tuple[Path, ...] = (),
    **kw,
) -> SimDevice:
    """The simulated device as it ships: footage encrypted to the (simulated) agency and
    signed by its own throwaway key, kept in ``state_dir`` (or made in the TPM behind
    ``tpm_tcti``, a swtpm); the stand-in agency's keys in ``agency_dir`` (default:
    ``state_dir/agency``)."""
    from bwv import __version__
    from crypto.evidence import EvidenceSink

    keys = sim_keys(state_dir, cfg.device_id, agency_dir, tpm_tcti, tpm_ca_certs)
    storage = LocalStorage(state_dir / "outbox")
    sink = EvidenceSink(
        storage.root,
        keys.identity,
        keys.agency_public,
        __version__,
        keys.chain_state_path,
        counter=keys.counter,
    )
    return SimDevice(cfg, storage, realtime=realtime, sink=sink, keys=keys, **kw)
