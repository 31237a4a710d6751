"""What the cameras are sending right now (``UploadActivity``): the dock's routes tell it of
each upload begun, chunk appended, upload completed and refusal answered to an authenticated
device, and of every authenticated request (``seen``); ``snapshot`` gives the uploads under
way with their progress, rate and whether they stalled. In memory only (a restart forgets
it: the store holds what counts), thread-safe, one per ``Dock`` (``dock.activity``): no
global state. Time is the dock's injected clock, given by the caller.

Nothing here is evidence or a custody event: it is what the console's uploads page shows.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from dock.protocol import Code

RATE_WINDOW_US = 5_000_000  # the rate is over the last few seconds
FORGET_AFTER_US = 24 * 3600 * 1_000_000  # an upload silent this long is dropped (it expires)
MAX_REASON = 300  # a refusal's reason as kept (the dock's own words, never footage)
# refusals that are part of the protocol's ordinary course (the camera asks where the upload
# stands and goes on): not what makes a camera "failing"
ROUTINE = Code.REREAD | {Code.BUSY}


@dataclass(frozen=True)
class Refusal:
    """The last refusal the dock answered a device: HTTP status, protocol code, reason."""

    status: int
    code: str | None
    reason: str
    at_us: int
    segment_id: str | None = None

    def text(self) -> str:
        code = f" {self.code}" if self.code else ""
        return f"{self.status}{code}: {self.reason}"


@dataclass(frozen=True)
class ActiveUpload:
    """One upload under way, as ``UploadActivity.snapshot`` sees it."""

    device_id: str
    segment_id: str
    offset: int  # bytes the dock holds
    size: int  # bytes the upload declares
    rate_bytes_s: float  # over the last few seconds (0 when nothing came in them)
    started_us: int
    last_chunk_us: int  # when the last bytes came (the start, before any)
    stalled: bool  # no bytes for at least the threshold given to ``snapshot``
    last_error: str | None = None  # the last refusal about this upload, if any

    @property
    def fraction(self) -> float:
        return 1.0 if self.size <= 0 else min(1.0, self.offset / self.size)


@dataclass
class _Upload:
    size: int
    offset: int
    started_us: int
    last_us: int
    samples: deque[tuple[int, int]] = field(default_factory=deque)  # (at_us, bytes added)
    error: Refusal | None = None


@dataclass
class _Device:
    seen_us: int | None = None
    refusal: Refusal | None = None
    completed_us: int | None = None


class UploadActivity:
    """The dock's live view of its uploads; every method is safe from any thread."""

    def __init__(self, window_us: int = RATE_WINDOW_US) -> None:
        self.window_us = window_us
        self._lock = threading.Lock()
        self._uploads: dict[tuple[str, str], _Upload] = {}
        self._devices: dict[str, _Device] = {}

    # -- what the routes tell it

    def seen(self, device_id: str, now_us: int) -> None:
        """An authenticated request from ``device_id``."""
        with self._lock:
            self._device(device_id).seen_us = now_us

    def started(self, device_id: str, segment_id: str, offset: int, size: int, now_us: int) -> None:
        """An upload created (or found again, resuming at ``offset``)."""
        with self._lock:
            up = self._uploads.get((device_id, segment_id))
            if up is None:
                self._uploads[(device_id, segment_id)] = _Upload(size, offset, now_us, now_us)
            else:
                up.size, up.offset = size, max(up.offset, offset)

    def chunk(self, device_id: str, segment_id: str, offset: int, size: int, now_us: int) -> None:
        """A chunk appended: the upload now holds ``offset`` of its ``size`` bytes."""
        with self._lock:
            up = self._uploads.get((device_id, segment_id))
            if up is None:  # begun before this dock started: the first chunk is the base
                self._uploads[(device_id, segment_id)] = _Upload(size, offset, now_us, now_us)
                return
            added = max(0, offset - up.offset)
            up.size, up.offset, up.last_us, up.error = size, offset, now_us, None
            up.samples.append((now_us, added))
            self._prune(up, now_us)

    def completed(self, device_id: str, segment_id: str, now_us: int) -> None:
        """The upload completed: the dock holds the segment and answered its receipt."""
        with self._lock:
            self._uploads.pop((device_id, segment_id), None)
            self._device(device_id).completed_us = now_us

    def refused(
        self,
        device_id: str,
        segment_id: str | None,
        status: int,
        code: str | None,
        reason: str,
        now_us: int,
    ) -> None:
        """The dock refused a request of ``device_id`` (about ``segment_id``, if any). A
        routine one (``ROUTINE``: the camera asks again where the upload stands) is not
        kept; a refusal of the segment itself (``Code.SEGMENT``) ends its upload."""
        if code in ROUTINE:
            return
        refusal = Refusal(status, code, reason[:MAX_REASON], now_us, segment_id)
        with self._lock:
            self._device(device_id).refusal = refusal
            key = (device_id, segment_id or "")
            if code in Code.SEGMENT:
                self._uploads.pop(key, None)
            elif key in self._uploads:
                self._uploads[key].error = refusal

    # -- what the console reads

    def snapshot(self, now_us: int, stalled_s: float = 60.0) -> list[ActiveUpload]:
        """The uploads under way, by device and start; forgets those silent for a day."""
        stalled_us = int(stalled_s * 1_000_000)
        with self._lock:
            for key in [
                k for k, u in self._uploads.items() if now_us - u.last_us > FORGET_AFTER_US
            ]:
                del self._uploads[key]
            out = [
                ActiveUpload(
                    dev,
                    seg,
                    up.offset,
                    up.size,
                    self._rate(up, now_us),
                    up.started_us,
                    up.last_us,
                    now_us - up.last_us >= stalled_us,
                    up.error.text() if up.error else None,
                )
                for (dev, seg), up in self._uploads.items()
            ]
        return sorted(out, key=lambda a: (a.device_id, a.started_us, a.segment_id))

    def last_seen_us(self, device_id: str) -> int | None:
        with self._lock:
            d = self._devices.get(device_id)
            return d.seen_us if d else None

    def last_refusal(self, device_id: str) -> Refusal | None:
        with self._lock:
            d = self._devices.get(device_id)
            return d.refusal if d else None

    def last_completed_us(self, device_id: str) -> int | None:
        with self._lock:
            d = self._devices.get(device_id)
            return d.completed_us if d else None

    # -- inside

    def _device(self, device_id: str) -> _Device:
        return self._devices.setdefault(device_id, _Device())

    def _prune(self, up: _Upload, now_us: int) -> None:
        while up.samples and up.samples[0][0] <= now_us - self.window_us:
            up.samples.popleft()

    def _rate(self, up: _Upload, now_us: int) -> float:
        """Bytes per second over the last ``window_us`` (or since the start, if later)."""
        start = max(now_us - self.window_us, up.started_us)
        span_us = now_us - start
        if span_us <= 0:
            return 0.0
        sent = sum(n for at, n in up.samples if at > start)
        return sent * 1_000_000 / span_us
