"""The device daemon (``bwv run``): the device core around real hardware, under systemd.

- READY=1 once the camera delivers frames; the watchdog is pinged only while frames keep
  arriving (``capture/notify.py``), so systemd restarts a pipeline that stalls.
- The loop ticks the officer's controls every 10 ms and writes ``<storage.dir>/status.json``
  (atomically) every second for ``bwv status``.
- Camera and microphone faults are shown to the officer (fault pattern) and reported.
- When docked (the dock-detect input is pulled low) and a dock is configured, the shipper
  thread ships finished segments; it never holds up capture.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from base.clock import OffsetWallClock
from base.packets import Packet, Stream
from capture.config import Config
from capture.device import DeviceCore, controls_config, recorder_config
from capture.evidence_setup import open_evidence, outbox_dir
from capture.hardware import Hardware
from capture.notify import FrameWatchdog, Notifier, watchdog_interval_us
from capture.recorder import Recorder
from crypto.durable import write_atomic
from gpio.controls import OfficerControls

if TYPE_CHECKING:  # the shipper and its client load only when a dock is configured
    from base.formats import AudioFormat
    from dock.clocksync import ClockKeeper
    from dock.shipper import ShipperThread

log = logging.getLogger("bwv.daemon")

TICK_S = 0.01
STATUS_EVERY_US = 1_000_000
STALL_US = 5_000_000  # no frame for this long: the watchdog stops being fed


class DaemonSetupError(Exception):
    """Why the daemon cannot start at all (one line for the user)."""


def status_path(cfg: Config) -> Path:
    return Path(cfg.storage.dir) / "status.json"


def prepare_storage(cfg: Config) -> Path:
    """``storage.dir``, made if missing (0700); ``DaemonSetupError`` if it cannot be."""
    d = Path(cfg.storage.dir)
    if d.exists() and not d.is_dir():
        raise DaemonSetupError(f"storage.dir {d} is not a folder (a file is in the way)")
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DaemonSetupError(f"cannot make storage.dir {d}: {exc.strerror or exc}") from None
    return d


@dataclass
class DaemonStats:
    frames: int = 0
    audio_packets: int = 0


class Daemon:
    def __init__(
        self,
        cfg: Config,
        hw: Hardware,
        wall: OffsetWallClock,
        firmware: str,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.hw = hw
        self.wall = wall
        self.firmware = firmware
        self.notifier = notifier or Notifier()
        self.stats = DaemonStats()
        self.ready = False
        self._last_status_us: int | None = None
        prepare_storage(cfg)
        setup = open_evidence(cfg, firmware)
        self.sink = setup.sink
        self.key = setup.key  # one connection to a TPM, shared by the recorder and the shipper
        controls = OfficerControls(hw.pins, controls_config(cfg))
        recorder = None
        if setup.sink is not None:
            recovered = setup.sink.recover()
            for p in recovered:
                log.warning("recovered a segment left open by a crash: %s", p.name)
            rcfg = recorder_config(cfg)
            recorder = Recorder(
                rcfg,
                setup.sink,
                wall,
                audio_extradata=_aac_extradata(rcfg.audio) if rcfg.audio else b"",
                free_bytes=lambda: _free_bytes(Path(cfg.storage.dir)),
                on_event=lambda e: self.core.event(e),
            )
        self.core = DeviceCore(recorder, controls, refusal=setup.refusal)
        for w in setup.warnings:
            self.core.warning("dock", w)
        interval = watchdog_interval_us() or 2_000_000
        self.watchdog = FrameWatchdog(self.notifier, interval, STALL_US)
        self.shipper: ShipperThread | None = None

    # -- packets, from the camera's and microphone's threads --------------------------------
    def _packet(self, p: Packet) -> None:
        if p.stream is Stream.VIDEO:
            self.stats.frames += 1
            self.watchdog.frame(self.hw.clock.now_us())
        else:
            self.stats.audio_packets += 1
        if self.core.recorder is not None:
            self.core.recorder.on_packet(p)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.hw.pins.setup_input(self.cfg.pins.dock_detect, pull_up=True)
        self.hw.camera.start(self._packet)
        if self.hw.microphone is not None:
            try:
                self.hw.microphone.start(self._packet)
            except Exception as exc:  # a dead microphone must not stop the picture
                self.core.fault("microphone", str(exc))
        self._start_shipper()

    def _start_shipper(self) -> None:
        if not self.cfg.dock.url or self.core.refusal:
            return
        from crypto.identity import IdentityError, load_dock_public_key
        from dock.client import DeviceCredentials, DockClient
        from dock.clocksync import shipper_on_time
        from dock.device_report import Reporter
        from dock.log_proof import WitnessKeysError, load_policy
        from dock.outbox import ChainOutbox
        from dock.shipper import Shipper, ShipperThread

        ident = self.key.signer if self.key is not None else None
        if ident is None:
            return
        try:
            dock_key = bytes(load_dock_public_key(Path(self.cfg.keys.dock_public_key)))
            witnesses = load_policy(Path(self.cfg.keys.witnesses), self.cfg.keys.witness_quorum)
        except (IdentityError, WitnessKeysError) as exc:
            self.core.warning("dock", f"not shipping: {exc}")
            return
        client = DockClient(
            self.cfg.dock.url,
            DeviceCredentials(ident.device_id, ident, dock_key),
            wall_clock=lambda: self.wall.wall_us(self.hw.clock.now_us()),
        )

        keeper = self._clock_keeper()
        if keeper is None:
            return
        outbox = ChainOutbox(outbox_dir(self.cfg))
        # the report to the dock: a battery only where the hardware has a gauge
        battery = getattr(self.hw, "battery", None)
        reporter = Reporter(outbox, firmware_version=self.firmware, battery=battery)
        shipper = Shipper(
            outbox,
            client,
            self.hw.clock,
            docked=self.docked,
            on_time=shipper_on_time(keeper, client),
            witnesses=witnesses,
            reporter=reporter,
        )
        self.shipper = ShipperThread(shipper).start()

    def _clock_keeper(self) -> ClockKeeper | None:
        """What takes the dock's time answers: each is signed into the chain, and the wall
        clock is corrected only as dock/clocksync.py allows (a refusal is a warning)."""
        from dock.clockstate import CLOCK_STATE
        from dock.clocksync import ClockKeeper, ClockPolicy

        if self.sink is None:
            return None
        tsa_ca = Path(self.cfg.keys.tsa_ca)
        try:
            ca_pem = tsa_ca.read_bytes() if tsa_ca.is_file() else None
        except OSError as exc:
            self.core.warning("clock", f"cannot read the TSA CA {tsa_ca}: {exc.strerror}")
            ca_pem = None
        policy = ClockPolicy(
            max_step_us=round(self.cfg.clock.max_step_s * 1_000_000), tsa_ca_pem=ca_pem
        )
        return ClockKeeper(
            self.sink.chain,
            self.wall,
            self.hw.clock,
            policy,
            warn=self._clock_warning,
            state_path=Path(self.cfg.storage.dir) / CLOCK_STATE,
        )

    def _clock_warning(self, msg: str | None) -> None:
        if msg is not None:
            self.core.warning("clock", msg)
        else:
            self.core.clear_warning("clock")

    def docked(self) -> bool:
        return not self.hw.pins.read(self.cfg.pins.dock_detect)  # the dock pulls it low

    def tick(self, now_us: int) -> None:
        self.core.tick(now_us)
        for source, dev in (("camera", self.hw.camera), ("microphone", self.hw.microphone)):
            if dev is not None and dev.fault and source not in self.core.faults:
                self.core.fault(source, dev.fault)
        if not self.ready and self.stats.frames:
            self.ready = True
            self.notifier.ready("frames flowing")
            log.info("camera delivers frames: ready")
        self.watchdog.tick(now_us)
        if self._last_status_us is None or now_us - self._last_status_us >= STATUS_EVERY_US:
            self._last_status_us = now_us
            self.write_status(now_us)

    def write_status(self, now_us: int) -> None:
        st = self.core.status()
        shipper = self.shipper.shipper.state if self.shipper else None
        st.update(
            {
                "updated_wall_us": time.time_ns() // 1000,
                "pid": os.getpid(),
                "frames_delivered": self.stats.frames,
                "camera_dropped_frames": getattr(self.hw.camera, "dropped_frames", 0),
                "clock": {
                    "quality": self.wall.quality,
                    "sync_seq": self.wall.last_sync_seq,
                    "refused": self.wall.refused,
                },
                "shipper": {
                    "docked": self.docked() if self.shipper else False,
                    "shipped": shipper.shipped if shipper else 0,
                    "last_error": shipper.last_error if shipper else None,
                    "witnessed": shipper.witnessed if shipper else None,
                    "unwitnessed": dict(shipper.unwitnessed) if shipper else {},
                },
            }
        )
        try:
            write_atomic(status_path(self.cfg), json.dumps(st, indent=1).encode(), mode=0o640)
        except OSError as exc:
            log.error("cannot write status: %s", exc.strerror)
        self.notifier.status(f"{st['state']}; faults: {len(st['faults'])}")

    def stop(self) -> None:
        self.notifier.stopping()
        self.core.shutdown()
        for dev in (self.hw.camera, self.hw.microphone):
            if dev is not None:
                dev.stop()
        if self.shipper is not None:
            self.shipper.stop()
        if self.sink is not None:
            self.sink.close()
        if self.key is not None:
            self.key.close()
        self.hw.pins.close()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.wait(TICK_S):
                self.tick(self.hw.clock.now_us())
        finally:
            self.stop()


def _aac_extradata(fmt: AudioFormat) -> bytes:
    from capture.audio_encoder import AacEncoder

    return AacEncoder(fmt).extradata


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def run_daemon(cfg: Config) -> int:
    """``bwv run``: build the hardware, run until SIGTERM/SIGINT. ``DaemonSetupError`` when
    it cannot start (storage.dir unusable, the hardware libraries missing)."""
    import signal

    from bwv import __version__
    from capture.camera import capture_clock
    from capture.hardware import build_hardware, describe_missing, missing_libraries

    prepare_storage(cfg)
    missing = missing_libraries(cfg)
    if missing:
        raise DaemonSetupError(describe_missing(missing))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    clock = capture_clock()
    # wall time is anchored to the capture clock once; the dock corrects it later
    wall = OffsetWallClock(time.time_ns() // 1000 - clock.now_us())
    try:
        hw = build_hardware(
            cfg, wall, lambda msg: log.error("hardware fault: %s", msg), clock=clock
        )
    except (ImportError, RuntimeError) as exc:  # RPi.GPIO refuses to load off a Raspberry Pi
        raise DaemonSetupError(f"cannot set up the hardware: {exc}") from None
    daemon = Daemon(cfg, hw, wall, __version__)
    log.info("bwv %s starting: device %s", __version__, cfg.device_id)
    daemon.run(stop)
    return 0
