"""Enrollment tokens: a technician's one-time permission to bind a device id to a key.

A token is shown once, to the technician; the dock keeps only its SHA-256. It is bound to the
one device id it was issued for, used up by the first enrollment that presents it, and expires
(default: one hour) if never used. An enrollment also signs a fresh one-time challenge from the
dock (``Challenges``), so a recorded enrollment request, replayed, is refused. A key held in
a TPM is enrolled only with the TPM's attestation of it, against the challenge (the secret of
the credential the dock made with it stays with that challenge: ``TpmChallenge``).
``DEFAULT_TTL_S`` is the one default for every way of issuing one (``bwv dock token`` and
``POST /v1/admin/tokens``).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class TpmChallenge:
    """What a challenge asked for with a TPM's keys keeps: the secret of the credential only
    that TPM can recover, bound to its endorsement certificate and attestation key
    (dock.attest.make_credential). Never shown, never logged."""

    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class OpenChallenge:
    expires_at_us: int
    tpm: TpmChallenge | None = None


class Challenges:
    """One-time enrollment challenges, kept in memory for ``CHALLENGE_TTL_S``; one asked
    for with a TPM's keys keeps its credential's secret (``TpmChallenge``) with it."""

    def __init__(self, ttl_s: int = CHALLENGE_TTL_S, limit: int = MAX_CHALLENGES) -> None:
        self.ttl_us = ttl_s * 1_000_000
        self.limit = limit
        self._open: dict[str, OpenChallenge] = {}  # challenge -> its state, oldest first
        self._lock = threading.Lock()

    def issue(self, now_us: int, tpm: TpmChallenge | None = None) -> str:
        value = secrets.token_hex(32)
        with self._lock:
            for old in [c for c, o in self._open.items() if o.expires_at_us <= now_us]:
                del self._open[old]
            while len(self._open) >= self.limit:
                del self._open[next(iter(self._open))]
            self._open[value] = OpenChallenge(now_us + self.ttl_us, tpm)
        return value

    def take(self, value: str, now_us: int) -> OpenChallenge | None:
        """Once, for a challenge this dock issued and that has not expired: what it binds
        (None: unknown, used or expired)."""
        with self._lock:
            held = self._open.pop(value, None)
        return held if held is not None and now_us < held.expires_at_us else None
