"""The dock's key (``GET /v1/dock``) and enrollment (``POST /v1/enroll``): a device binds
its id to its key with a one-time token bound to that id, in a request signed by that key
over a fresh one-time challenge from the dock (``POST /v1/enroll/challenge``)."""

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dock import enroll as enroll_mod
from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import Code, ProtocolError, parse_signed_headers, verify_request
from dock.routes.deps import DockDep, raw_path, read_body
from dock.routes.models import (
    ERRORS,
    ChallengeResponse,
    DockInfo,
    EnrollRequest,
    EnrollResponse,
)
from dock.strict import StrictJSONRoute

log = logging.getLogger("bwv.dock")

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/v1/dock", response_model=DockInfo, tags=["dock"])
def dock_info(dock: DockDep) -> DockInfo:
    return DockInfo(dock_public_key=dock.public_key.hex(), dock_key_id=dock.key_id)


@router.post(
    "/v1/enroll/challenge", response_model=ChallengeResponse, tags=["device"], status_code=201
)
def enroll_challenge(dock: DockDep) -> ChallengeResponse:
    """A fresh challenge, good once for ``CHALLENGE_TTL_S``: the enrollment signs it."""
    value = dock.challenges.issue(dock.clock())
    return ChallengeResponse(challenge=value, expires_in_s=enroll_mod.CHALLENGE_TTL_S)


def _enroll(
    dock: Dock, req: EnrollRequest, method: str, path: str, headers: object, body: bytes
) -> EnrollResponse:
    try:
        h = parse_signed_headers(headers)
    except ProtocolError as exc:
        raise Refused(401, Code.UNSIGNED, str(exc)) from None
    pub = bytes.fromhex(req.public_key)
    if h.device_id != req.device_id:
        raise Refused(401, Code.BAD_SIGNATURE, "signing header names another device than the body")
    if not verify_request(pub, h, method, path, body):
        raise Refused(401, Code.BAD_SIGNATURE, "request not signed by the key being enrolled")
    now = dock.clock()
    if not dock.challenges.take(req.challenge, now):
        raise Refused(
            401, Code.REPLAYED, "enrollment challenge unknown, used or expired: ask for a new one"
        )
    rec = dock.store.enroll(req.device_id, pub, enroll_mod.token_hash(req.token), now)
    log.info("enrolled device %s (key %s)", rec.device_id, rec.key_id)
    return EnrollResponse(
        device_id=rec.device_id,
        key_id=rec.key_id,
        enrolled_at_us=rec.enrolled_at_us,
        dock_public_key=dock.public_key.hex(),
        dock_key_id=dock.key_id,
    )


@router.post(
    "/v1/enroll",
    response_model=EnrollResponse,
    responses=ERRORS,
    tags=["device"],
    status_code=201,
)
async def enroll(req: EnrollRequest, request: Request, dock: DockDep) -> EnrollResponse:
    body = await read_body(request)
    path = raw_path(request.scope)
    return await run_in_threadpool(_enroll, dock, req, request.method, path, request.headers, body)
