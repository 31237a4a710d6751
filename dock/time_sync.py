"""A dock's answer to ``POST /v1/time`` as the device reads it (``read_time_answer``): its
fields, checked for form; the client (dock/client.py) checks it is for its request and signed
by the pinned dock key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crypto.time_answer import TIME_ANSWER_TYPE, time_answer, time_answer_bytes
from dock.protocol import ProtocolError, b64d_or

_TIME_ANSWER_KEYS = {"type", "device_id", "nonce", "device_time_us", "dock_time_us", "dock_key_id"}


@dataclass(frozen=True)
class TimeSync:
    """A dock's time answer, checked: signed by the pinned dock key over this device's fresh
    nonce (``answer_bytes`` is what it signed, and what a TSA token stamps)."""

    dock_time_us: int  # the dock's clock when it answered
    device_time_us: int  # the device's wall clock when it asked
    offset_us: int  # dock − device
    round_trip_us: int  # how long the answer took (the offset is good to about half that)
    nonce: str = ""  # the device's nonce (32 hex), sent with the request and signed back
    device_id: str = ""
    dock_key_id: str = ""
    signature: bytes = b""  # Ed25519 by the dock key over ``answer_bytes``
    tsa_token: bytes | None = None  # RFC 3161 token (DER) over SHA-256(answer_bytes), if any

    def answer(self) -> dict[str, Any]:
        """The answer ``A`` the dock signed (crypto/time_answer.py)."""
        return time_answer(
            self.device_id, self.nonce, self.device_time_us, self.dock_time_us, self.dock_key_id
        )

    @property
    def answer_bytes(self) -> bytes:
        return time_answer_bytes(self.answer())


def _int_field(obj: dict[str, Any], key: str) -> int:
    v = obj[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{key} is not an integer")
    return v


def read_time_answer(body: Any, round_trip: int) -> TimeSync:
    """The answer's fields (ValueError: malformed, or not a time answer)."""
    try:
        a = body["answer"]
        if not isinstance(a, dict) or set(a) != _TIME_ANSWER_KEYS:
            raise ValueError("the answer's fields are not a time answer's")
        token = body["tsa_token"]
        sync = TimeSync(
            dock_time_us=_int_field(a, "dock_time_us"),
            device_time_us=_int_field(a, "device_time_us"),
            offset_us=_int_field(a, "dock_time_us") - _int_field(a, "device_time_us"),
            round_trip_us=round_trip,
            nonce=str(a["nonce"]),
            device_id=str(a["device_id"]),
            dock_key_id=str(a["dock_key_id"]),
            signature=b64d_or(str(body["signature"]), "time signature"),
            tsa_token=None if token is None else b64d_or(str(token), "time token"),
        )
    except (KeyError, TypeError, ValueError, ProtocolError) as exc:
        raise ValueError(f"malformed answer ({exc})") from None
    if a["type"] != TIME_ANSWER_TYPE or sync.answer() != a:
        raise ValueError("not a time answer")
    return sync
