"""The dock's key (``GET /v1/dock``) and enrollment (``POST /v1/enroll``): a device binds
its id to its key with a one-time token bound to that id, in a request signed by that key
over a fresh one-time challenge from the dock (``POST /v1/enroll/challenge``). A key held in
a TPM (P-256) comes with the TPM's attestation of it (dock/enroll_tpm.py)."""

import logging

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from dock import enroll as enroll_mod
from dock import enroll_tpm
from dock.enroll import TpmChallenge
from dock.enroll_tpm import KeyCustody
from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import Code, ProtocolError, parse_signed_headers, verify_request
from dock.routes.deps import DockDep, raw_path, read_body
from dock.routes.models import (
    ERRORS,
    ChallengeRequest,
    ChallengeResponse,
    DockInfo,
    EnrollRequest,
    EnrollResponse,
    TpmCredential,
)
from dock.strict import StrictJSONRoute

log = logging.getLogger("bwv.dock")

router = APIRouter(route_class=StrictJSONRoute)


@router.get("/v1/dock", response_model=DockInfo, tags=["dock"])
def dock_info(dock: DockDep) -> DockInfo:
    return DockInfo(dock_public_key=dock.public_key.hex(), dock_key_id=dock.key_id)


@router.post(
    "/v1/enroll/challenge",
    response_model=ChallengeResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    tags=["device"],
    status_code=201,
)
def enroll_challenge(dock: DockDep, req: ChallengeRequest | None = None) -> ChallengeResponse:
    """A fresh challenge, good once for ``CHALLENGE_TTL_S``: the enrollment signs it. Asked
    with a TPM's endorsement certificate and attestation key, it comes with a credential
    only that TPM can activate (dock/enroll_tpm.py)."""
    tpm, credential = None, None
    if req is not None and req.tpm is not None:  # a refusal is a 403 attestation
        tpm, answer = enroll_tpm.open_credential(req.tpm.ek_certificate, req.tpm.ak_public)
        credential = TpmCredential(**answer)
    value = dock.challenges.issue(dock.clock(), tpm)
    return ChallengeResponse(
        challenge=value, expires_in_s=enroll_mod.CHALLENGE_TTL_S, tpm=credential
    )


def _custody(dock: Dock, req: EnrollRequest, pub: bytes, bound: TpmChallenge | None) -> KeyCustody:
    """Where the key is held: a file, or (attested) a TPM; else a 403 ``attestation``."""
    if req.attestation is None:
        return KeyCustody(enroll_tpm.FILE)
    return enroll_tpm.check(
        req.attestation.model_dump(),
        public_key=pub,
        challenge=req.challenge,
        bound=bound,
        trusted_cas=dock.tpm_cas,
    )


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
    enroll_tpm.precheck(pub, req.attestation is not None, dock.tpm_cas)  # else 403 attestation
    if not verify_request(pub, h, method, path, body):
        raise Refused(401, Code.BAD_SIGNATURE, "request not signed by the key being enrolled")
    now = dock.clock()
    taken = dock.challenges.take(req.challenge, now)
    if taken is None:
        raise Refused(
            401, Code.REPLAYED, "enrollment challenge unknown, used or expired: ask for a new one"
        )
    held = _custody(dock, req, pub, taken.tpm)
    rec = dock.store.enroll(
        req.device_id,
        pub,
        enroll_mod.token_hash(req.token),
        now,
        key_store=held.key_store,
        attested_by=held.attested_by,
    )
    log.info(
        "enrolled device %s (key %s, key store %s%s)",
        rec.device_id,
        rec.key_id,
        rec.key_store,
        f", attested by {rec.attested_by}" if rec.attested_by else "",
    )
    return EnrollResponse(
        device_id=rec.device_id,
        key_id=rec.key_id,
        enrolled_at_us=rec.enrolled_at_us,
        dock_public_key=dock.public_key.hex(),
        dock_key_id=dock.key_id,
        key_store=rec.key_store,
        attested_by=rec.attested_by,
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
