"""The dock's outer wall: how long a client may take, how many it may be, and how much one
device may hold open (``WallLimits``), and the HTTP protocol that cuts slow clients.

Defaults, for a 12-hour shift of 1080p: a body camera records 1080p30 H.264 at about
8 Mbit/s, plus audio and container, say 10 Mbit/s = 1.25 MB/s; 12 h = 43,200 s, so a shift
is about 54 GB (43,200 × 1.25 MB). A device may therefore declare up to 64 GiB in open
uploads (a shift with margin). At one segment a minute a shift is 720 segments; a device
may hold 1,024 open uploads (a shift's segments, all interrupted, with margin). Uploads not
touched for 24 h are abandoned: they expire and their staging files are removed.

Connections: a client has ``header_timeout_s`` to send its request's headers and may not
leave the body silent for ``body_timeout_s``; the server holds at most ``max_connections``
(the unit's ``LimitNOFILE=8192`` leaves room for the store's files). A device may send
``max_inflight_per_device`` chunks at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HOUR_US = 3600 * 1_000_000


@dataclass(frozen=True)
class WallLimits:
    header_timeout_s: float = 10.0  # from connection (or the last answer) to full headers
    body_timeout_s: float = 30.0  # longest silence inside a request body
    max_connections: int = 2048  # open connections; more are closed on arrival
    max_inflight_per_device: int = 2  # chunks of one device being received at once
    max_open_uploads: int = 1024  # per device: a shift of one-minute segments, with margin
    max_declared_bytes: int = 64 << 30  # per device, over its open uploads: a 1080p shift
    upload_expiry_s: int = 24 * 3600  # an upload untouched this long is abandoned
    time_nonce_keep_s: int = 7 * 24 * 3600  # /v1/time nonces (any timestamp): kept this long


def uvicorn_options(limits: WallLimits) -> dict[str, Any]:
    """What ``uvicorn.Config`` takes to enforce ``limits`` (``serve`` passes these on)."""
    return {
        "http": slow_client_protocol(limits),
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 << 10,  # request line and headers
    }


def slow_client_protocol(limits: WallLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol, which cuts a connection that has not sent its request's
    headers within ``header_timeout_s`` and refuses connections past ``max_connections``."""

    class SlowClientCut(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.abort()
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(limits.header_timeout_s, self._header_late)

        def _header_late(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.abort()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return SlowClientCut
