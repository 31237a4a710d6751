"""Enrollment tokens: a technician's one-time permission to bind a device id to a key.

A token is shown once, to the technician; the dock keeps only its SHA-256. It is bound to the
one device id it was issued for, used up by the first enrollment that presents it, and expires
(default: one hour) if never used. An enrollment also signs a fresh one-time challenge from the
dock (``Challenges``), so a recorded enrollment request, replayed, is refused.
``DEFAULT_TTL_S`` is the one default for every way of issuing one (``bwv dock token`` and
``POST /v1/admin/tokens``).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from dock.protocol import is_device_id, sha256_hex
from dock.store import Store

DEFAULT_TTL_S = 3600
MAX_TTL_S = 30 * 24 * 3600
CHALLENGE_TTL_S = 120
MAX_CHALLENGES = 4096  # open at once; the oldest go first


@dataclass(frozen=True)
class IssuedToken:
    token: str  # give this to the technician; it is not stored
    device_id: str  # the only device it can enrol
    expires_at_us: int


def token_hash(token: str) -> str:
    return sha256_hex(token.encode())


def issue_token(
    store: Store,
    now_us: int,
    *,
    device_id: str,
    ttl_s: int = DEFAULT_TTL_S,
    actor: str = "technician",
) -> IssuedToken:
    if not is_device_id(device_id):
        raise ValueError(f"not a valid device id: {device_id!r}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be in 1..{MAX_TTL_S}")
    token = "bwv-enroll-" + secrets.token_urlsafe(24)
    expires = now_us + ttl_s * 1_000_000
    store.add_token(token_hash(token), device_id, now_us, expires, actor)
    return IssuedToken(token, device_id, expires)


class Challenges:
    """One-time enrollment challenges, kept in memory for ``CHALLENGE_TTL_S``."""

    def __init__(self, ttl_s: int = CHALLENGE_TTL_S, limit: int = MAX_CHALLENGES) -> None:
        self.ttl_us = ttl_s * 1_000_000
        self.limit = limit
        self._open: dict[str, int] = {}  # challenge -> expiry (µs), oldest first
        self._lock = threading.Lock()

    def issue(self, now_us: int) -> str:
        value = secrets.token_hex(32)
        with self._lock:
            for old in [c for c, exp in self._open.items() if exp <= now_us]:
                del self._open[old]
            while len(self._open) >= self.limit:
                del self._open[next(iter(self._open))]
            self._open[value] = now_us + self.ttl_us
        return value

    def take(self, value: str, now_us: int) -> bool:
        """True once for a challenge this dock issued and that has not expired."""
        with self._lock:
            expires = self._open.pop(value, None)
        return expires is not None and now_us < expires
