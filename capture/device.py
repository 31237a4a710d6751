"""The device core: the recorder and the officer's controls wired together, with the
faults and status a technician reads. No hardware here: the Pi daemon and the simulator
both build one of these around their own camera, microphone and pins.

- intents from the controls (press, hold) go to the recorder;
- the recorder's events (state, faults) go to the controls as lights and buzz;
- a device that cannot record (no key, unreadable pinned keys) says so loudly: fault
  pattern, log line, status; a press is refused with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from base.formats import AudioFormat, VideoFormat
from capture.config import Config
from capture.recorder import Event, EventKind, Recorder, RecorderConfig, State
from gpio.controls import ControlsConfig, OfficerControls
from gpio.controls import State as ShownState

log = logging.getLogger("bwv.device")

# what the officer's controls show for each recorder state
SHOWN_STATE: dict[State, ShownState] = {
    State.BOOTING: "booting",
    State.BUFFERING: "buffering",
    State.RECORDING: "recording",
    State.STOPPING: "stopping",
}


def controls_config(cfg: Config) -> ControlsConfig:
    c, p = cfg.controls, cfg.pins
    return ControlsConfig(
        button_pin=p.button,
        red_led_pin=p.red_led,
        green_led_pin=p.green_led,
        haptic_pin=p.haptic,
        debounce_s=c.debounce_ms / 1000,
        hold_to_stop_s=c.hold_to_stop_s,
        reminder_interval_s=c.reminder_interval_s,
        stealth=c.stealth,
    )


def recorder_config(cfg: Config) -> RecorderConfig:
    v, a = cfg.video, cfg.audio
    byte_rate = v.bitrate / 8 + (a.bitrate / 8 if a.enabled else 0)
    return RecorderConfig(
        video=VideoFormat(v.width, v.height, v.fps),
        audio=AudioFormat(a.sample_rate, a.channels, a.bitrate) if a.enabled else None,
        pre_record_us=int(cfg.pre_record.seconds * 1_000_000),
        pre_record_max_bytes=cfg.pre_record.max_mb * 1_000_000,
        audio_in_pre_record=cfg.pre_record.audio,
        segment_us=int(cfg.segments.seconds * 1_000_000),
        low_space_bytes=int(cfg.storage.low_space_minutes * 60 * byte_rate),
        resume_space_bytes=int(max(cfg.segments.seconds, 10) * byte_rate * 2),
        device_id=cfg.device_id,
    )


@dataclass
class DeviceCore:
    recorder: Recorder | None  # None: the device refuses to record (see ``refusal``)
    controls: OfficerControls
    refusal: str | None = None
    on_event: Callable[[Event], None] | None = None
    events: list[Event] = field(default_factory=list)
    now_us: int = 0
    faults: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the camera's thread reports events while the main loop ticks the controls
        self._lock = threading.RLock()
        if self.recorder is None and not self.refusal:
            raise ValueError("a device without a recorder must say why")
        if self.refusal:
            log.error("cannot record: %s", self.refusal)
            self.faults["identity"] = self.refusal
            self.controls.set_state("fault", self.now_us)  # presses reach us, to be refused
            self.controls.fault(self.refusal, self.now_us)

    # -- events from the recorder ------------------------------------------------------
    def event(self, e: Event) -> None:
        with self._lock:
            self._event(e)

    def _event(self, e: Event) -> None:
        self.events.append(e)
        if e.kind is EventKind.STATE and e.state is not None:
            self.controls.set_state(SHOWN_STATE[e.state], self.now_us)
        elif e.kind is EventKind.FAULT and e.source is not None:
            log.error("fault: %s", e.detail)
            self.faults[e.source.value] = e.detail
            self.controls.fault(e.detail, self.now_us)
        elif e.kind is EventKind.FAULT_CLEARED and e.source is not None:
            log.warning("fault cleared: %s", e.source.value)
            self.faults.pop(e.source.value, None)
            if not self.faults:
                self.controls.clear_fault(self.now_us)
        elif e.kind is EventKind.WARNING:
            log.warning("warning: %s", e.detail)
            self.warnings[e.detail] = e.detail
        elif e.kind in (EventKind.RECORDING_STARTED, EventKind.RECORDING_STOPPED):
            log.info("%s %s", e.kind, e.detail)
        if self.on_event:
            self.on_event(e)

    # -- time ---------------------------------------------------------------------------
    def tick(self, now_us: int) -> None:
        """Read the button, play feedback, act on the officer's intents."""
        with self._lock:
            self.now_us = max(self.now_us, now_us)
            intents = self.controls.tick(self.now_us)
        for intent in intents:
            if self.recorder is None:
                log.error("record pressed, refused: %s", self.refusal)
                continue
            if intent.kind == "start":
                self.recorder.press(intent.at_us)
            else:
                self.recorder.stop(intent.at_us)

    def shutdown(self) -> None:
        if self.recorder is not None and self.recorder.current is not None:
            self.recorder.finish_now(self.now_us, "shutdown")
        with self._lock:
            self.controls.close(self.now_us)

    def fault(self, source: str, reason: str) -> None:
        """A fault from outside the recorder (camera, microphone): shown and reported."""
        with self._lock:
            log.error("fault: %s: %s", source, reason)
            self.faults[source] = f"{source}: {reason}"
            self.controls.fault(self.faults[source], self.now_us)

    def warning(self, source: str, message: str) -> None:
        with self._lock:
            log.warning("%s: %s", source, message)
            self.warnings[source] = f"{source}: {message}"

    def clear_warning(self, source: str) -> None:
        with self._lock:
            self.warnings.pop(source, None)

    # -- what a technician reads -------------------------------------------------------
    def status(self) -> dict[str, Any]:
        r = self.recorder
        shown = self.controls.status()
        return {
            "state": r.state.value if r else "refusing",
            "recording": r.current.id if r and r.current else None,
            "faults": sorted(self.faults.values()),
            "warnings": sorted(self.warnings.values()),
            "stealth": shown.stealth,
            "indicator": str(shown.indicator),
        }
