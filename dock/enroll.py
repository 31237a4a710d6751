"""Enrollment tokens: a technician's one-time permission to bind a device id to a key.

A token is shown once, to the technician; the dock keeps only its SHA-256. It is used up by
the first enrollment that presents it, and expires (default: one hour) if never used.
``DEFAULT_TTL_S`` is the one default for every way of issuing one (``bwv dock token`` and
``POST /v1/admin/tokens``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from dock.protocol import is_device_id, sha256_hex
from dock.store import Store

DEFAULT_TTL_S = 3600
MAX_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class IssuedToken:
    token: str  # give this to the technician; it is not stored
    device_id: str | None  # the only device it can enrol (None: any id)
    expires_at_us: int


def token_hash(token: str) -> str:
    return sha256_hex(token.encode())


def issue_token(
    store: Store,
    now_us: int,
    *,
    device_id: str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
    actor: str = "technician",
) -> IssuedToken:
    if device_id is not None and not is_device_id(device_id):
        raise ValueError(f"not a valid device id: {device_id!r}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl_s must be in 1..{MAX_TTL_S}")
    token = "bwv-enroll-" + secrets.token_urlsafe(24)
    expires = now_us + ttl_s * 1_000_000
    store.add_token(token_hash(token), device_id, now_us, expires, actor)
    return IssuedToken(token, device_id, expires)
