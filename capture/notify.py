"""systemd's notify protocol (sd_notify), without libsystemd: one datagram per message to
the socket named by ``$NOTIFY_SOCKET``. Outside systemd it does nothing.

The daemon sends ``READY=1`` once the camera delivers frames, and ``WATCHDOG=1`` only while
frames keep arriving (``FrameWatchdog``), so systemd restarts a pipeline that stalls.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self._address = addr or None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> bool:
        if self._address is None:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            try:
                # never block the daemon on systemd: a full socket drops the message
                s.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, self._address)
            except OSError:
                return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")


def watchdog_interval_us() -> int | None:
    """Half of systemd's WatchdogSec (``$WATCHDOG_USEC``), when it is for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) // 2


@dataclass
class FrameWatchdog:
    """Pings the watchdog only while frames arrive: no frame for ``stall_us`` of clock time,
    no ping, and systemd restarts the service."""

    notifier: Notifier
    interval_us: int
    stall_us: int
    last_frame_us: int | None = None
    last_ping_us: int | None = None

    def frame(self, now_us: int) -> None:
        self.last_frame_us = now_us

    def tick(self, now_us: int) -> bool:
        """Ping if due and frames are flowing. Returns True when it pinged."""
        if self.last_frame_us is None or now_us - self.last_frame_us > self.stall_us:
            return False
        if self.last_ping_us is not None and now_us - self.last_ping_us < self.interval_us:
            return False
        self.last_ping_us = now_us
        return self.notifier.watchdog()

    def stalled(self, now_us: int) -> bool:
        return self.last_frame_us is not None and now_us - self.last_frame_us > self.stall_us
