"""What a selftest check finds, and how long the hardware checks run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["PASS", "WARN", "FAIL"]


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


def describe_error(exc: BaseException) -> str:
    """``Type: message`` (or just the type), for a one-line detail."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
