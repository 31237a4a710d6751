"""``POST /v1/time``: the dock's time, signed over the device's nonce; the device's offset is
recorded. Taken at any request timestamp (a device whose clock is off syncs here:
dock/gate.py lets it).

The answer ``A`` (``crypto.time_answer``) is signed by the dock key over its dock JSON
encoding (``canonical_json``), and, when the dock has a time-stamping authority configured
(``dock_tsa``: anything with ``timestamp(sha256 digest) -> token DER``), carries an RFC 3161
token over SHA-256(json(A)): what lets a device apply a correction over its step limit. A
TSA that does not answer leaves the token out (the device then keeps a large correction
from its clock, and says so); the answer itself is never held up.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from fastapi import APIRouter

from crypto.time_answer import time_answer, time_answer_bytes
from dock.protocol import b64e
from dock.routes.deps import AuthedDevice, DockDep
from dock.routes.models import ERRORS, TimeAnswer, TimeRequest, TimeResponse
from dock.strict import StrictJSONRoute

log = logging.getLogger("bwv.dock")


router = APIRouter(route_class=StrictJSONRoute)


def dock_tsa(dock: Any) -> Any:
    """The dock's TSA: its own (``Dock.tsa``), else the one its transparency log uses for
    checkpoints (``dock.translog.config.tsa_url``), else None."""
    tsa = getattr(dock, "tsa", None)
    if tsa is not None:
        return tsa
    config = getattr(getattr(dock, "translog", None), "config", None)
    url = getattr(config, "tsa_url", None)
    if not url:
        return None
    from tsa.client import TsaClient  # lazily: a dock without a TSA never loads it

    return TsaClient(url)


def _tsa_token(tsa: Any, digest: bytes) -> bytes | None:
    if tsa is None:
        return None
    try:
        token: bytes = tsa.timestamp(digest)
        return token
    except Exception as exc:  # a TSA down must not stop the dock's answer
        log.warning("time: the TSA gave no token (%s: %s)", type(exc).__name__, exc)
        return None


@router.post("/v1/time", response_model=TimeResponse, responses=ERRORS, tags=["device"])
def dock_time(req: TimeRequest, auth: AuthedDevice, dock: DockDep) -> TimeResponse:
    now = dock.clock()
    offset = now - req.device_time_us
    dock.store.record_time_sync(auth.device.device_id, offset, now)
    answer = time_answer(auth.device.device_id, req.nonce, req.device_time_us, now, dock.key_id)
    body = time_answer_bytes(answer)
    token = _tsa_token(dock_tsa(dock), hashlib.sha256(body).digest())
    return TimeResponse(
        answer=TimeAnswer(**answer),
        signature=b64e(dock.key.sign(body).signature),
        tsa_token=b64e(token) if token is not None else None,
    )
