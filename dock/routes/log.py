"""The dock's transparency log, for anyone (dock/translog.py):

- ``GET /v1/log/checkpoint``      the latest checkpoint: a C2SP signed note (text/plain), the
                                  dock's signature and the witnesses' cosignatures
- ``GET /v1/log/checkpoint.tsr``  its RFC 3161 token (application/timestamp-reply body: the
                                  TimeStampToken), 404 when it has none
- ``GET /v1/log/proof/{index}``   a leaf's inclusion proof in the latest checkpoint
- ``GET /v1/log/status``          the log's size, its witnesses and TSA, what it lacks

Public, unsigned requests: every answer proves itself (the checkpoint is signed by the dock
key and cosigned, a proof checks against it), and none reveals a leaf's contents, only
hashes. A watchdog, a witness operator or a court can fetch them without a device's key;
the dock still signs each answer as it signs all (dock.middleware.SignResponses).
"""

from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from dock.middleware import Refused
from dock.protocol import Code
from dock.routes.deps import DockDep
from dock.routes.models import ERRORS, LogProofModel
from dock.translog import DockLog, refresh_quietly

router = APIRouter()

NOTE_TYPE = "text/plain; charset=utf-8"
TOKEN_TYPE = "application/timestamp-reply"


def _log(dlog: DockLog | None) -> DockLog:
    if dlog is None:
        raise Refused(404, Code.NOT_FOUND, "this dock keeps no transparency log")
    return dlog


@router.get(
    "/v1/log/checkpoint",
    responses={**ERRORS, 200: {"content": {NOTE_TYPE: {}}}},
    response_class=Response,
    tags=["log"],
)
async def checkpoint(dock: DockDep) -> Response:
    dlog = _log(dock.translog)
    await run_in_threadpool(refresh_quietly, dlog)  # brought up to date first
    cp = dlog.latest
    if cp is None:
        raise Refused(404, Code.NOT_FOUND, "the log has no checkpoint yet")
    return Response(cp.note, media_type=NOTE_TYPE)


@router.get(
    "/v1/log/checkpoint.tsr",
    responses={**ERRORS, 200: {"content": {TOKEN_TYPE: {}}}},
    response_class=Response,
    tags=["log"],
)
def checkpoint_token(dock: DockDep) -> Response:
    cp = _log(dock.translog).latest
    if cp is None or cp.token is None:
        raise Refused(404, Code.NOT_FOUND, "the latest checkpoint has no RFC 3161 token")
    return Response(cp.token, media_type=TOKEN_TYPE)


@router.get("/v1/log/proof/{index}", response_model=LogProofModel, responses=ERRORS, tags=["log"])
def proof(index: Annotated[int, PathParam(ge=0, le=2**62)], dock: DockDep) -> dict[str, Any]:
    got = _log(dock.translog).proof(index)
    if got is None:
        raise Refused(404, Code.NOT_FOUND, f"leaf {index} is not in the latest checkpoint")
    return got


@router.get("/v1/log/status", tags=["log"])
def status(dock: DockDep) -> dict[str, Any]:
    return _log(dock.translog).status()
