"""A whole segment in one request: ``PUT /v1/segments/{segment_id}``.

The camera's usual case (a closed segment no larger than one chunk) in one round trip instead
of two: the request creates the upload as ``POST`` does (its record, base64, in
``Upload-Record``; its size is the body's ``Content-Length``; every check of the create
route), takes the body as the upload's only chunk, completes the upload and answers its
receipt (201).

One SHA-256 pass over the footage at each end. The signed ``Content-Digest`` is the stored
digest the record names (``bwv-stored=:<base64>:``), not a SHA-256 of the body: the camera
has it from the record and hashes nothing, and the dock checks it with the stored digest it
takes anyway as the bytes are written (dock/upload_live.py), which the verification then
uses. A body that is not that digest is cut off the staged file again and refused
(460 ``checksum_mismatch``) before anything is verified, as a chunk's would be.

An upload the dock holds already (complete, or part of it from an earlier attempt) is
answered at once with its state (200), its receipt if it is complete, and the body is not
read (the connection is closed after the answer): the camera goes on from the dock's offset
with chunks (``PATCH``), as after ``POST``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import H_UPLOAD_RECORD, Code
from dock.receipts import SignedReceipt, UploadState
from dock.routes.deps import Authed, AuthedDevice, DockDep, SegmentId
from dock.routes.models import CHUNK_BODY, ERRORS, CreateUpload, Problem, UploadStateModel
from dock.routes.uploads import begin_upload, complete_upload, receive_into
from dock.strict import StrictJSONRoute
from dock.upload_live import ChunkWriter

router = APIRouter(route_class=StrictJSONRoute)

UploadRecord = Annotated[
    str,
    Header(
        alias=H_UPLOAD_RECORD,
        min_length=1,
        max_length=12_000,
        description="the segment's chain record (its manifest), base64",
    ),
]


@router.put(
    "/v1/segments/{segment_id}",
    response_model=UploadStateModel,
    responses={
        **ERRORS,
        200: {"model": UploadStateModel, "description": "held already: its state, body not read"},
        201: {"model": UploadStateModel, "description": "received whole: its receipt"},
        408: {"model": Problem, "description": "the body stalled"},
        460: {"model": Problem, "description": "the body is not the stored digest declared"},
    },
    status_code=201,
    tags=["upload"],
    openapi_extra=CHUNK_BODY,
)
async def put_segment(
    segment_id: SegmentId,
    request: Request,
    response: Response,
    auth: AuthedDevice,
    upload_record: UploadRecord,
    content_length: Annotated[int, Header(alias="content-length", ge=1, le=2**62)],
    dock: DockDep,
) -> dict[str, Any]:
    """Create the upload, take the whole stored file as its body (checked against the signed
    stored digest as it is written), complete it and answer the receipt."""
    declared = auth.body_sha256.hex()
    req = CreateUpload(manifest=upload_record, size=content_length, sha256=declared)
    opened = await run_in_threadpool(_open, dock, auth, segment_id, req)
    if isinstance(opened, UploadState):  # held already: say where it stands
        response.status_code = 200
        return opened.to_json()
    ok = False
    try:
        ok = await _take_body(opened, request, declared)
    finally:
        if not ok:  # cut off the staged file again
            await run_in_threadpool(dock.store.finish_chunk, opened, False)
    appended, receipt = await run_in_threadpool(_finish, dock, auth, segment_id, opened)
    return replace(appended, complete=True, receipt=receipt).to_json()


def _open(
    dock: Dock, auth: Authed, segment_id: str, req: CreateUpload
) -> ChunkWriter | UploadState:
    """Create the upload (every check of ``POST``) and open its staged file at 0; or, held
    already, its state (one hop to a worker thread for both)."""
    state, _ = begin_upload(dock, auth, segment_id, req)
    if state.complete or state.offset != 0:
        return state
    return dock.store.open_chunk(auth.device.device_id, segment_id, 0, req.size)


async def _take_body(writer: ChunkWriter, request: Request, declared: str) -> bool:
    """The body into the staged file (True); 460 if it is not the declared stored digest."""
    await receive_into(writer, request)
    digest = writer.live.digest
    if digest is None or digest.size != writer.end or digest.hexdigest() != declared:
        raise Refused(
            460,
            Code.CHECKSUM,
            "the body is not the stored digest its signed Content-Digest declares",
        )
    return True


def _finish(
    dock: Dock, auth: Authed, segment_id: str, writer: ChunkWriter
) -> tuple[UploadState, SignedReceipt]:
    """Count the body, then complete the upload: its state and receipt (one hop)."""
    dev = auth.device.device_id
    appended = dock.store.finish_chunk(writer, True)
    dock.activity.chunk(dev, segment_id, appended.offset, appended.size, dock.clock())
    return appended, complete_upload(dock, auth.device, segment_id)
