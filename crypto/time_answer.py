"""The dock's time answer ``A`` (docs/evidence-format.md, "The dock's papers"): what the
dock signs over the device's nonce, what a TSA token stamps (SHA-256 of its bytes), and what
a ``time_sync`` record carries so that anyone can check the dock's signature later.

One definition for the three that need it: the dock that signs it (dock/routes/time.py), the
camera that checks the answer (dock/client.py), and the verifier that checks the recorded
signature (crypto/verify/timecheck.py)."""

from __future__ import annotations

import json
from typing import Any

TIME_ANSWER_TYPE = "bwv-dock-time-v1"


def time_answer(
    device_id: str, nonce: str, device_time_us: int, dock_time_us: int, dock_key_id: str
) -> dict[str, Any]:
    """The time answer ``A`` the dock signs (and a TSA stamps)."""
    return {
        "type": TIME_ANSWER_TYPE,
        "device_id": device_id,
        "nonce": nonce,
        "device_time_us": device_time_us,
        "dock_time_us": dock_time_us,
        "dock_key_id": dock_key_id,
    }


def time_answer_bytes(answer: dict[str, Any]) -> bytes:
    """json(A): the bytes the dock signs (the dock's JSON encoding: sorted keys, no
    whitespace, UTF-8; for A's strings and integers the canonical encoding too)."""
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def recorded_time_answer(r: dict[str, Any]) -> dict[str, Any]:
    """The answer a ``time_sync`` record (its fields ``r``) was given: the device's wall
    clock when it asked is the answer's ``device_time_us``."""
    return time_answer(
        r["device_id"], r["nonce"], r["device_wall_us"], r["dock_time_us"], r["dock_key_id"]
    )
