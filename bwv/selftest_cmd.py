"""``bwv selftest``: check a camera before it goes out, one PASS/WARN/FAIL line per check.

Checks, in order: the configuration; the device key (present and loadable), the pinned
agency key, the pinned dock key (missing: a warning); the storage directory (free space at
least the low-space threshold, and writable: a probe file written, fsync'd and removed); the
clocks (the capture clock advances; the wall clock is plausible); the camera (started for
about 2 s of its own clock: frames and at least one keyframe, stamped on the capture clock);
the microphone (about 1 s: packets, and their decoded RMS level); the button, LEDs and
haptic motor (each output blinked once, the button and dock-detect levels read); the dock,
if ``dock.url`` is set (``GET /v1/dock``: its key must be the pinned one, and its answer
signed by it; then a signed ``GET /v1/status``: the camera must be enrolled there and not
revoked). Without the GPIO library (RPi.GPIO) the camera and microphone are still tested and
the missing library is named on a line of its own.

The hardware comes from ``hardware_factory`` (:func:`capture.hardware.build_hardware` on the
device), so the same checks run against simulated backends in the tests. The camera, the
microphone and the pins are exclusive: while the daemon runs they are not tested (stop it:
``sudo systemctl stop bwv``). Exit status 0 only if nothing FAILed (warnings allowed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import click

from bwv.status_cmd import DaemonStatus, config_option, read_daemon_status
from capture.config import Config, ConfigError, load
from capture.packets import Packet, Stream

Status = Literal["PASS", "WARN", "FAIL"]
PLAUSIBLE_YEAR = 2024
DEFAULT_DEVICE_IDS = ("bwv-unset", "bwv-0000")


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"


@dataclass
class SelftestOptions:
    """How long each hardware check runs (capture-clock seconds) and waits (real seconds)."""

    camera_s: float = 2.0
    camera_timeout_s: float = 12.0  # picamera2 takes a second or two to start
    microphone_s: float = 1.0
    microphone_timeout_s: float = 8.0
    blink_s: float = 0.3  # long enough for a technician to see each LED and feel the motor
    dock_timeout_s: float = 5.0


def _err(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- configuration and keys ------------------------------------------------------------------


def check_config(cfg: Config, source: str) -> Check:
    if cfg.device_id in DEFAULT_DEVICE_IDS:
        return Check(
            "config",
            "WARN",
            f"valid ({source}), but device_id is still "
            f"{cfg.device_id!r}: give every camera its own id",
            {"device_id": cfg.device_id},
        )
    return Check(
        "config", "PASS", f"valid ({source}), device {cfg.device_id}", {"device_id": cfg.device_id}
    )


def check_keys(cfg: Config) -> list[Check]:
    from crypto.identity import (
        DeviceIdentity,
        IdentityError,
        key_id_of,
        load_agency_public_key,
        load_dock_public_key,
    )

    k = cfg.keys
    out = []
    try:
        ident = DeviceIdentity.load(Path(k.device_key), cfg.device_id)
        out.append(
            Check(
                "device key",
                "PASS",
                f"key id {ident.key_id} ({k.device_key})",
                {"key_id": ident.key_id},
            )
        )
    except IdentityError as exc:
        hint = "" if Path(k.device_key).exists() else ": run `bwv provision`"
        out.append(Check("device key", "FAIL", f"{exc}{hint}"))
    try:
        agency = load_agency_public_key(Path(k.agency_public_key))
        kid = key_id_of(bytes(agency))
        out.append(Check("agency key", "PASS", f"pinned, key id {kid}", {"key_id": kid}))
    except IdentityError as exc:
        out.append(Check("agency key", "FAIL", f"{exc}: footage cannot be sealed"))
    if not Path(k.dock_public_key).exists():
        out.append(
            Check(
                "dock key",
                "WARN",
                f"none pinned at {k.dock_public_key}: the camera records but cannot ship "
                "until it is enrolled at a dock (technician's guide, section 5)",
            )
        )
    else:
        try:
            dock = load_dock_public_key(Path(k.dock_public_key))
            kid = key_id_of(bytes(dock))
            out.append(Check("dock key", "PASS", f"pinned, key id {kid}", {"key_id": kid}))
        except IdentityError as exc:
            out.append(Check("dock key", "FAIL", f"{exc} (the daemon refuses to record)"))
    return out


# -- storage -------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def check_storage(cfg: Config) -> Check:
    from capture.device import recorder_config

    d = Path(cfg.storage.dir)
    low = recorder_config(cfg).low_space_bytes
    if not d.is_dir():
        return Check("storage", "FAIL", f"{d} does not exist (or is not a directory)")
    try:
        st = os.statvfs(d)
    except OSError as exc:
        return Check("storage", "FAIL", f"{d}: {exc.strerror}")
    free = st.f_bavail * st.f_frsize
    data = {"dir": str(d), "free_bytes": free, "low_space_bytes": low}
    probe = d / f".selftest-{os.getpid()}-{secrets.token_hex(4)}.probe"
    payload = secrets.token_bytes(64 << 10)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if probe.read_bytes() != payload:
            raise OSError("the probe file reads back different bytes")
        probe.unlink()
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        return Check("storage", "FAIL", f"{d} is not writable: {exc.strerror or exc}", data)
    minutes = cfg.storage.low_space_minutes
    if free < low:
        return Check(
            "storage",
            "FAIL",
            f"{d}: only {_size(free)} free, less than the "
            f"low-space threshold {_size(low)} ({minutes:g} min of recording)",
            data,
        )
    return Check(
        "storage",
        "PASS",
        f"{d}: writable, {_size(free)} free (threshold {_size(low)}: {minutes:g} min of recording)",
        data,
    )


# -- clocks -------------------------------------------------------------------------------------


def check_clock(clock_start_us: int, clock_end_us: int, wall_us: int) -> Check:
    year = time.gmtime(wall_us / 1e6).tm_year
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall_us / 1e6))
    data = {"capture_advanced_us": clock_end_us - clock_start_us, "wall_us": wall_us}
    if clock_end_us <= clock_start_us:
        return Check(
            "clock",
            "FAIL",
            f"the capture clock did not advance ({clock_start_us} -> {clock_end_us} us)",
            data,
        )
    if year < PLAUSIBLE_YEAR:
        return Check(
            "clock",
            "FAIL",
            f"the wall clock says {when}: not set (no network "
            "time, no RTC?); the dock sets it when docked, but footage recorded "
            "before then carries this time",
            data,
        )
    return Check("clock", "PASS", f"capture clock advances; wall clock {when}", data)


# -- camera and microphone ---------------------------------------------------------------------


@dataclass
class _Collected:
    packets: list[Packet] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _run_source(
    device: Any, stream: Stream, seconds: float, timeout_s: float, keep_data: bool
) -> tuple[_Collected, str | None]:
    """Start ``device``, collect its packets until they span ``seconds`` of capture time
    (or ``timeout_s`` of real time, or a fault), stop it. Returns what came and any error."""
    got = _Collected()
    span_us = int(seconds * 1_000_000)
    first: list[int] = []  # capture time of the first packet
    need_keyframe = [stream is Stream.VIDEO]

    def on_packet(p: Packet) -> None:
        if p.stream is not stream:
            return
        with got.lock:
            got.packets.append(
                p
                if keep_data
                else Packet(p.stream, p.pts_us, p.duration_us, p.keyframe, b"", p.frame_index)
            )
            if not first:
                first.append(p.pts_us)
            if p.keyframe:
                need_keyframe[0] = False
            if not need_keyframe[0] and p.end_us - first[0] >= span_us:
                got.done.set()

    try:
        device.start(on_packet)
    except Exception as exc:  # noqa: BLE001 - any failure to start is the finding
        with contextlib.suppress(Exception):
            device.stop()
        return got, f"did not start: {_err(exc)}"
    error = None
    try:
        deadline = time.monotonic() + timeout_s
        while not got.done.wait(min(0.05, max(deadline - time.monotonic(), 0))):
            if getattr(device, "fault", None) or time.monotonic() >= deadline:
                break
    finally:
        try:
            device.stop()
        except Exception as exc:  # noqa: BLE001
            error = f"did not stop cleanly: {_err(exc)}"
    return got, error


def check_camera(hw: Any, opts: SelftestOptions) -> Check:
    clock = hw.clock
    t0 = clock.now_us()
    got, error = _run_source(
        hw.camera, Stream.VIDEO, opts.camera_s, opts.camera_timeout_s, keep_data=False
    )
    t1 = clock.now_us()
    with got.lock:
        packets = list(got.packets)
    fault = getattr(hw.camera, "fault", None)
    n = len(packets)
    keys = sum(1 for p in packets if p.keyframe)
    data: dict[str, Any] = {
        "frames": n,
        "keyframes": keys,
        "dropped_frames": getattr(hw.camera, "dropped_frames", None),
        "encoder": getattr(hw.camera, "encoder_kind", None),
    }
    if error and error.startswith("did not start"):
        return Check("camera", "FAIL", f"the camera {error}", data)
    if fault:
        return Check("camera", "FAIL", f"camera fault: {fault}", data)
    if n == 0:
        return Check(
            "camera",
            "FAIL",
            f"no frames within {opts.camera_timeout_s:g} s (is the "
            "camera connected, enabled, not in use by another process?)",
            data,
        )
    if keys == 0:
        return Check(
            "camera",
            "FAIL",
            f"{n} frames but no keyframe: recordings could not "
            "start (the encoder must repeat SPS/PPS on keyframes)",
            data,
        )
    span_us = max(p.end_us for p in packets) - min(p.pts_us for p in packets)
    slack = 1_000_000
    off_clock = [p for p in packets if not t0 - slack <= p.pts_us <= t1 + slack]
    if off_clock:
        return Check(
            "camera",
            "FAIL",
            f"{len(off_clock)} of {n} frames carry times outside "
            "the capture clock's: the sensor timestamps are on another clock, so "
            "sound and picture would not line up",
            data,
        )
    fps = n / (span_us / 1e6) if span_us > 0 else 0.0
    data.update(span_us=span_us, fps=round(fps, 1))
    detail = (
        f"{n} frames ({keys} keyframes) in {span_us / 1e6:.1f} s of capture time, ~{fps:.0f} fps"
    )
    if data["encoder"]:
        detail += f", encoder {data['encoder']}"
    if error:
        return Check("camera", "FAIL", f"{detail}; but it {error}", data)
    return Check("camera", "PASS", detail, data)


def _rms_dbfs(packets: list[Packet], cfg: Config) -> float | None:
    """RMS level of the decoded AAC packets, dB relative to full scale (None: undecodable)."""
    import av
    import numpy as np

    from capture.audio_encoder import AacEncoder, AudioFormat

    a = cfg.audio
    try:
        extradata = AacEncoder(AudioFormat(a.sample_rate, a.channels, a.bitrate)).extradata
        dec = av.CodecContext.create("aac", "r")
        dec.extradata = extradata
        chunks = []
        for p in packets:
            for frame in dec.decode(av.Packet(p.data)):
                chunks.append(frame.to_ndarray().astype(np.float64).ravel())
        if not chunks:
            return None
        x = np.concatenate(chunks)
    except Exception:  # noqa: BLE001 - the level is information, not the verdict
        return None
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return -math.inf if rms <= 0 else 20 * math.log10(rms)


def check_microphone(hw: Any, cfg: Config, opts: SelftestOptions) -> Check:
    if not cfg.audio.enabled:
        return Check("microphone", "PASS", "not used (audio.enabled = false)")
    mic = hw.microphone
    if mic is None:
        return Check("microphone", "FAIL", "audio is enabled but there is no microphone")
    got, error = _run_source(
        mic, Stream.AUDIO, opts.microphone_s, opts.microphone_timeout_s, keep_data=True
    )
    check = getattr(mic, "check", None)
    fault = (check() if callable(check) else None) or getattr(mic, "fault", None)
    with got.lock:
        packets = list(got.packets)
    data: dict[str, Any] = {"packets": len(packets)}
    if error and error.startswith("did not start"):
        return Check("microphone", "FAIL", f"the microphone {error}", data)
    if fault:
        return Check("microphone", "FAIL", f"microphone fault: {fault}", data)
    if not packets:
        return Check(
            "microphone",
            "FAIL",
            f"no sound within {opts.microphone_timeout_s:g} s "
            "(is the microphone connected? audio.device right?)",
            data,
        )
    level = _rms_dbfs(packets, cfg)
    span_us = max(p.end_us for p in packets) - min(p.pts_us for p in packets)
    data.update(
        span_us=span_us, level_dbfs=None if level is None or math.isinf(level) else round(level, 1)
    )
    detail = f"{len(packets)} packets in {span_us / 1e6:.1f} s"
    if level is None:
        detail += ", level unknown (could not decode)"
    elif math.isinf(level):
        return Check(
            "microphone", "WARN", f"{detail}, but digital silence: muted or disconnected?", data
        )
    else:
        detail += f", level {level:.1f} dBFS RMS"
    if error:
        return Check("microphone", "FAIL", f"{detail}; but it {error}", data)
    return Check("microphone", "PASS", detail, data)


# -- button, LEDs, haptic ----------------------------------------------------------------------


def check_controls(hw: Any, cfg: Config, opts: SelftestOptions) -> Check:
    pins, p = hw.pins, cfg.pins
    outputs = (("red LED", p.red_led), ("green LED", p.green_led), ("haptic", p.haptic))
    pause = threading.Event()  # never set: its wait is the blink's length, not a sync
    step = "set up the pins"
    try:
        for name, pin in outputs:
            step = f"set up the {name} (BCM {pin})"
            pins.setup_output(pin, initial=False)
        step = f"set up the button (BCM {p.button})"
        pins.setup_input(p.button, pull_up=True)
        step = f"set up dock detect (BCM {p.dock_detect})"
        pins.setup_input(p.dock_detect, pull_up=True)
        step = "read the button"
        pressed = not pins.read(p.button)  # active low: the button pulls it to ground
        docked = not pins.read(p.dock_detect)  # the dock pulls it low
        for name, pin in outputs:
            step = f"blink the {name} (BCM {pin})"
            pins.write(pin, True)
            pause.wait(opts.blink_s)
            pins.write(pin, False)
            pause.wait(opts.blink_s / 2)
    except Exception as exc:  # noqa: BLE001
        return Check("controls", "FAIL", f"could not {step}: {_err(exc)}")
    finally:
        with contextlib.suppress(Exception):
            pins.close()
    blinked = ", ".join(f"{name} (BCM {pin})" for name, pin in outputs)
    return Check(
        "controls",
        "PASS",
        f"blinked {blinked} once each; button (BCM {p.button}) "
        f"{'PRESSED' if pressed else 'released'}; dock detect (BCM {p.dock_detect}) "
        f"{'docked' if docked else 'not docked'}",
        {"button_pressed": pressed, "docked": docked},
    )


# -- the dock -------------------------------------------------------------------------------------


def check_dock(cfg: Config, opts: SelftestOptions) -> Check:
    import httpx

    from crypto.identity import IdentityError, key_id_of, load_dock_public_key
    from dock.protocol import H_DOCK_SIGNATURE, H_NONCE, verify_response

    url = cfg.dock.url
    if not url:
        return Check(
            "dock", "WARN", "no dock configured (dock.url is empty): footage stays on the camera"
        )
    nonce = secrets.token_hex(16)
    started = time.monotonic()
    try:
        resp = httpx.get(
            url.rstrip("/") + "/v1/dock", headers={H_NONCE: nonce}, timeout=opts.dock_timeout_s
        )
        took_ms = (time.monotonic() - started) * 1000
        info = resp.json()
        theirs = bytes.fromhex(info["dock_public_key"])
    except httpx.HTTPError as exc:
        return Check("dock", "FAIL", f"{url} unreachable: {_err(exc)}")
    except (ValueError, KeyError, TypeError):
        return Check("dock", "FAIL", f"{url} answered ({resp.status_code}) but not as a bwv dock")
    data = {"url": url, "dock_key_id": key_id_of(theirs), "round_trip_ms": round(took_ms)}
    try:
        pinned = bytes(load_dock_public_key(Path(cfg.keys.dock_public_key)))
    except IdentityError:
        return Check(
            "dock",
            "WARN",
            f"{url} reachable (key id {key_id_of(theirs)}), but no "
            "usable dock key is pinned to check it against",
            data,
        )
    if theirs != pinned:
        return Check(
            "dock",
            "FAIL",
            f"{url} has key id {key_id_of(theirs)}, the pinned key is "
            f"{key_id_of(pinned)}: wrong dock, or the dock's key changed",
            data,
        )
    if not verify_response(
        pinned, resp.status_code, nonce, resp.content, resp.headers.get(H_DOCK_SIGNATURE)
    ):
        return Check(
            "dock",
            "FAIL",
            f"{url} names the pinned key but its answer is not signed "
            "by it (something between the camera and the dock?)",
            data,
        )
    detail = (
        f"{url} reachable in {took_ms:.0f} ms, key id "
        f"{key_id_of(theirs)} is the pinned one (signed answer)"
    )
    enrolment = check_enrolment(cfg, url, pinned, opts)
    if enrolment is None:
        return Check("dock", "PASS", detail, data)
    status, text = enrolment
    data["enrolment"] = text
    return Check("dock", status, f"{detail}; {text}" if status == "PASS" else text, data)


def check_enrolment(
    cfg: Config, url: str, dock_key: bytes, opts: SelftestOptions
) -> tuple[Status, str] | None:
    """Ask the dock (a signed ``GET /v1/status``) whether it knows this camera and has not
    revoked it. None when there is no usable device key to ask with (its own check fails)."""
    from crypto.identity import DeviceIdentity, IdentityError
    from dock.client import DeviceCredentials, DockClient, DockError, DockRefused
    from dock.protocol import Code

    try:
        ident = DeviceIdentity.load(Path(cfg.keys.device_key), cfg.device_id)
    except IdentityError:
        return None
    creds = DeviceCredentials(ident.device_id, ident, dock_key)
    try:
        with DockClient(
            url, creds, wall_clock=lambda: time.time_ns() // 1000, timeout=opts.dock_timeout_s
        ) as client:
            status = client.status()
    except DockRefused as exc:
        if exc.code == Code.REVOKED:
            return "FAIL", (
                f"camera revoked at the dock ({url}: {exc.detail}): it cannot ship; a "
                "replacement camera needs a new device_id (technician's guide, section 10)"
            )
        if exc.code == Code.UNKNOWN_DEVICE:
            return "FAIL", (
                f"device {ident.device_id} is not enrolled at {url}: footage cannot ship "
                "until it is (`bwv provision --token ...`)"
            )
        if exc.code == Code.BAD_SIGNATURE:
            return "FAIL", (
                f"{url} knows {ident.device_id} with another key than this camera's "
                f"(key id {ident.key_id}): wrong device_id, or the key was replaced"
            )
        if exc.code == Code.STALE:
            return "WARN", (
                f"device {ident.device_id} is enrolled at {url}, but its clock is off from "
                "the dock's by more than the dock accepts: it is set when docked"
            )
        return "FAIL", f"{url} refused this camera: {exc.detail}"
    except DockError as exc:
        return "FAIL", f"could not ask {url} about this camera: {exc}"
    held = (status.get("chain") or {}).get("held", 0) if isinstance(status, dict) else 0
    return "PASS", f"enrolled there (key id {ident.key_id}), not revoked; {held} records held"


# -- a missing GPIO library ------------------------------------------------------------------------

GPIO_PACKAGES = (
    "the camera needs RPi.GPIO, which the python3-rpi-lgpio package provides: install.sh "
    "installs it from apt (sudo ./install.sh), or `pip install rpi-lgpio` in the venv "
    "(the `pi` extra); off a Raspberry Pi there are no pins to test"
)


class _NoPins:
    """Stands in for the pins when their library is missing (never used: see the check)."""


NO_PINS: Any = _NoPins()


def gpio_library_problem(exc: BaseException) -> str | None:
    """What to tell the technician when ``exc`` says the GPIO library is missing or cannot
    run here (RPi.GPIO refuses to import off a Pi); None for anything else."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in (
        "RPi",
        "lgpio",
    ):
        return f"RPi.GPIO cannot be imported ({exc}): {GPIO_PACKAGES}"
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    from_gpio = any(Path(f.filename).parts[-2:] == ("gpio", "rpi.py") for f in frames)
    if from_gpio and isinstance(exc, ImportError | RuntimeError):
        return f"RPi.GPIO cannot be used here ({_err(exc)}): {GPIO_PACKAGES}"
    return None


# -- all of it ------------------------------------------------------------------------------------


def _hardware_checks(
    cfg: Config, hardware_factory: Callable[..., Any], clock: Any, opts: SelftestOptions
) -> tuple[list[Check], tuple[int, int] | None]:
    """Camera, microphone and controls; and two readings of the hardware's capture clock
    taken around them (None if the hardware could not be set up)."""
    from capture.clock import OffsetWallClock

    wall = OffsetWallClock(time.time_ns() // 1000 - clock.now_us())
    faults: list[str] = []
    checks: list[Check] = []
    try:
        hw = hardware_factory(cfg, wall, faults.append, None, clock=clock)
    except Exception as exc:  # noqa: BLE001 - no RPi.GPIO off a Pi, pins busy, ...
        missing = gpio_library_problem(exc)
        why = f"cannot set up the hardware: {_err(exc)}"
        hw = None
        if missing is not None:  # the camera and microphone are still worth testing
            checks.append(Check("gpio library", "FAIL", missing))
            try:
                hw = hardware_factory(cfg, wall, faults.append, None, clock=clock, pins=NO_PINS)
            except Exception as again:  # noqa: BLE001
                why = f"cannot set up the hardware: {_err(again)}"
        if hw is None:
            checks += [Check(n, "FAIL", why) for n in ("camera", "microphone", "controls")]
            return checks, None
    start = hw.clock.now_us()
    checks += [check_camera(hw, opts), check_microphone(hw, cfg, opts)]
    if hw.pins is NO_PINS:
        checks.append(
            Check("controls", "FAIL", "not tested: no GPIO library (see the gpio library line)")
        )
    else:
        checks.append(check_controls(hw, cfg, opts))
    return checks, (start, hw.clock.now_us())


def run_selftest(
    cfg: Config,
    hardware_factory: Callable[..., Any] | None = None,
    *,
    config_source: str = "",
    clock: Any = None,
    wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    options: SelftestOptions | None = None,
    daemon: DaemonStatus | None = None,
) -> list[Check]:
    """Every check, in order. ``hardware_factory(cfg, wall, on_fault, on_warning, clock=)``
    builds the :class:`capture.hardware.Hardware` (default:
    :func:`capture.hardware.build_hardware`, the Pi's); ``clock`` is the capture clock handed
    to it (default: :func:`capture.camera.capture_clock`). The clock check reads the clock
    the hardware came with, before and after the camera and microphone ran."""
    opts = options or SelftestOptions()
    if hardware_factory is None:
        from capture.hardware import build_hardware

        hardware_factory = build_hardware
    if clock is None:
        from capture.camera import capture_clock

        clock = capture_clock()
    checks = [check_config(cfg, config_source or "defaults"), *check_keys(cfg), check_storage(cfg)]
    daemon = daemon if daemon is not None else read_daemon_status(cfg)
    readings = None
    if daemon.running:
        why = (
            f"not tested: the bwv daemon is running ({daemon.detail}) and holds the camera, "
            "microphone and pins; stop it first (sudo systemctl stop bwv)"
        )
        hw_checks = [Check(n, "FAIL", why) for n in ("camera", "microphone", "controls")]
    else:
        hw_checks, readings = _hardware_checks(cfg, hardware_factory, clock, opts)
    if readings is None:  # no hardware ran: watch the capture clock over a short wait
        start = clock.now_us()
        threading.Event().wait(0.02)
        readings = (start, clock.now_us())
    checks.append(check_clock(*readings, wall_us()))
    checks += hw_checks
    checks.append(check_dock(cfg, opts))
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{c.status}  {c.name:<{width}}  {c.detail}" for c in checks]
    failed = sum(c.status == "FAIL" for c in checks)
    warned = sum(c.status == "WARN" for c in checks)
    passed = len(checks) - failed - warned
    lines.append(
        f"selftest: {passed} passed, {warned} warnings, {failed} failed"
        + (" -- NOT READY" if failed else " -- ready")
    )
    return "\n".join(lines)


def _emit(checks: list[Check], as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}, indent=2
            )
        )
    else:
        click.echo(render(checks))


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def selftest(ctx: click.Context, config_path: Path, as_json: bool) -> None:
    """Check the camera: configuration, keys, storage, clock, camera, microphone, button,
    LEDs, haptic motor and dock. One PASS/WARN/FAIL line each, with the reason.

    Stop the daemon first (sudo systemctl stop bwv): the camera, microphone and pins can be
    used by one process at a time. The LEDs and the motor blink once each.

    \b
    Exit status: 0  nothing failed (warnings allowed)
                 1  something failed
    """
    inject = (ctx.obj or {}).get("selftest", {}) if isinstance(ctx.obj, dict) else {}
    try:
        cfg = load(config_path)
    except ConfigError as exc:
        from bwv.errors import bad_configuration

        _emit([Check("config", "FAIL", str(exc), {"key": exc.key})], as_json)
        raise bad_configuration(exc) from None  # exit 2: nothing could be checked
    checks = run_selftest(
        cfg,
        inject.get("hardware_factory"),
        config_source=str(config_path),
        clock=inject.get("clock"),
        options=inject.get("options"),
    )
    _emit(checks, as_json)
    sys.exit(0 if all(c.ok for c in checks) else 1)
