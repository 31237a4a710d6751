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
from collections.abc import Callable
from dataclasses import dataclass, field

from capture.recorder import Event, Recorder
from gpio.controls import OfficerControls

log = logging.getLogger("bwv.device")


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
        if self.recorder is None and not self.refusal:
            raise ValueError("a device without a recorder must say why")
        if self.refusal:
            log.error("cannot record: %s", self.refusal)
            self.faults["identity"] = self.refusal
            self.controls.set_state("fault", self.now_us)  # presses reach us, to be refused
            self.controls.fault(self.refusal, self.now_us)

    # -- events from the recorder ------------------------------------------------------
    def event(self, e: Event) -> None:
        self.events.append(e)
        if e.kind == "state":
            self.controls.set_state(e.detail, self.now_us)  # type: ignore[arg-type]
        elif e.kind == "fault":
            log.error("fault: %s", e.detail)
            self.faults["storage"] = e.detail
            self.controls.fault(e.detail, self.now_us)
        elif e.kind == "fault_cleared":
            log.warning("fault cleared: %s", e.detail)
            self.faults.pop(e.detail, None)
            if not self.faults:
                self.controls.clear_fault(self.now_us)
        elif e.kind == "warning":
            log.warning("warning: %s", e.detail)
            self.warnings[e.detail] = e.detail
        elif e.kind in ("recording_started", "recording_stopped"):
            log.info("%s %s", e.kind, e.detail)
        if self.on_event:
            self.on_event(e)

    # -- time ---------------------------------------------------------------------------
    def tick(self, now_us: int) -> None:
        """Read the button, play feedback, act on the officer's intents."""
        self.now_us = max(self.now_us, now_us)
        for intent in self.controls.tick(self.now_us):
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
        self.controls.close(self.now_us)

    # -- what a technician reads -------------------------------------------------------
    def status(self) -> dict:
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
