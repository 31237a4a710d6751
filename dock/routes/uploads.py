"""A segment's upload, tus-style: create (or find) it with its manifest, size and hash,
read where it stands, append chunks at ``Upload-Offset``, and complete it (verify, store,
log, receipt: dock/receive.py)."""

import asyncio
import contextlib
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from crypto.records import CHAIN_TYPES, RecordError, verify_line
from dock.agency import agency_refusal
from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import (
    H_UPLOAD_OFFSET,
    Code,
    ProtocolError,
    b64d,
    segment_id_for,
)
from dock.receipts import SignedReceipt, UploadState
from dock.receive import receive_segment
from dock.routes.deps import Authed, AuthedDevice, DockDep, SegmentId, check_chunk_checksum
from dock.routes.models import (
    CHUNK_BODY,
    ERRORS,
    CreateUpload,
    Problem,
    SignedReceiptModel,
    UploadChecksum,
    UploadStateModel,
)
from dock.store import DeviceRecord
from dock.strict import StrictJSONRoute
from dock.translog import with_proof
from dock.upload_live import ChunkWriter
from dock.verify import ManifestError

router = APIRouter(route_class=StrictJSONRoute)


def _manifest_of(dock: Dock, segment_id: str, req: CreateUpload) -> bytes:
    """The upload's manifest, if it is the one ``segment_id`` names, within the limits."""
    cfg = dock.config
    try:
        manifest = b64d(req.manifest)
    except ProtocolError:
        raise Refused(422, Code.INVALID, "manifest: not valid base64") from None
    if len(manifest) > cfg.max_manifest_bytes:
        raise Refused(413, Code.TOO_LARGE, f"manifest larger than {cfg.max_manifest_bytes} bytes")
    if segment_id_for(manifest) != segment_id:
        raise Refused(422, Code.MISMATCH, "segment id must be the SHA-256 of the manifest")
    if req.size > cfg.max_segment_bytes:
        raise Refused(413, Code.TOO_LARGE, f"segment larger than {cfg.max_segment_bytes} bytes")
    return manifest


def _check_declared(
    dock: Dock, device_id: str, segment_id: str, req: CreateUpload, manifest: bytes
) -> None:
    """The manifest names this device, the declared size and hash, and a free seq."""
    try:
        f = dock.verifier.parse(manifest)
    except ManifestError as exc:
        raise Refused(422, Code.MANIFEST_INVALID, str(exc)) from None
    if f.device_id != device_id:
        raise Refused(403, Code.OTHER_DEVICE, "the manifest names another device")
    if f.stored_digest != req.sha256:
        raise Refused(422, Code.MISMATCH, "sha256 is not the stored digest the manifest names")
    if f.stored_size != req.size:
        raise Refused(422, Code.MISMATCH, f"size {req.size} is not the manifest's {f.stored_size}")
    held = dock.store.held_segment(device_id, seq=f.seq)
    if held is not None and held.segment_id != segment_id:
        raise Refused(
            409,
            Code.SEQ_REUSED,
            f"sequence number {f.seq} is already held as another segment: "
            "sequence numbers are never reused",
        )


def _check_signed(public_key: bytes, device_id: str, manifest: bytes) -> None:
    """The manifest is signed by the device's enrolled key (checked now, not at the end)."""
    try:
        verify_line(manifest, public_key, device_id, CHAIN_TYPES)
    except RecordError as exc:
        raise Refused(
            422, Code.MANIFEST_INVALID, f"manifest refused: {exc.reason}: {exc.detail}"
        ) from None


def _check_quota(dock: Dock, device_id: str, size: int) -> None:
    """Expire abandoned uploads, then hold the device to its open uploads and bytes."""
    wall = dock.config.wall
    dock.store.expire_uploads(dock.clock(), wall.upload_expiry_s * 1_000_000)
    count, declared = dock.store.open_uploads(device_id)
    if count >= wall.max_open_uploads:
        raise Refused(
            429, Code.QUOTA, f"{count} uploads open (at most {wall.max_open_uploads}): finish some"
        )
    if declared + size > wall.max_declared_bytes:
        raise Refused(
            429,
            Code.QUOTA,
            f"open uploads would declare {declared + size} bytes "
            f"(at most {wall.max_declared_bytes}): finish some",
        )


@router.post(
    "/v1/segments/{segment_id}", response_model=UploadStateModel, responses=ERRORS, tags=["upload"]
)
def create_upload(
    segment_id: SegmentId,
    req: CreateUpload,
    response: Response,
    auth: AuthedDevice,
    dock: DockDep,
) -> dict[str, Any]:
    state, existing = begin_upload(dock, auth, segment_id, req)
    response.status_code = 200 if existing else 201
    if not state.complete and state.size == 0:
        # a record without a file (an end or time record): nothing to send, so completed at
        # once, its receipt in the answer (one round trip, not two)
        receipt = complete_upload(dock, auth.device, segment_id)
        state = replace(state, complete=True, receipt=receipt)
    return state.to_json()


def begin_upload(
    dock: Dock, auth: Authed, segment_id: str, req: CreateUpload
) -> tuple[UploadState, bool]:
    """Create (or find) the upload after every check of its record; its state (a complete
    one's receipt with a fresh proof) and whether it existed (also dock/routes/whole.py)."""
    dev = auth.device.device_id
    manifest = _manifest_of(dock, segment_id, req)
    _check_declared(dock, dev, segment_id, req, manifest)
    _check_signed(auth.device.public_key, dev, manifest)
    refused = agency_refusal(dock.agency_key_id, dock.verifier.parse(manifest))
    if refused is not None:  # before a byte of footage is sent
        raise Refused(422, refused[0], f"segment refused: {refused[1]}")
    store = dock.store
    existing = store.upload_state(dev, segment_id)
    if existing is None:
        _check_quota(dock, dev, req.size)
    state = store.begin_upload(dev, segment_id, manifest, req.size, req.sha256, dock.clock())
    if not state.complete:  # the console's uploads page (dock/activity.py)
        dock.activity.started(dev, segment_id, state.offset, state.size, dock.clock())
    return _with_proof(dock, state), existing is not None


def _with_proof(dock: Dock, state: UploadState) -> UploadState:
    """A complete upload's state with a fresh proof for its receipt (a device that kept a
    segment for want of a witnessed checkpoint asks again)."""
    if state.receipt is None:
        return state
    return replace(state, receipt=with_proof(dock.translog, state.receipt))


@router.get(
    "/v1/segments/{segment_id}", response_model=UploadStateModel, responses=ERRORS, tags=["upload"]
)
def upload_status(segment_id: SegmentId, auth: AuthedDevice, dock: DockDep) -> dict[str, Any]:
    state = dock.store.upload_state(auth.device.device_id, segment_id)
    if state is None:
        raise Refused(404, Code.NOT_FOUND, "no upload with this segment id")
    return _with_proof(dock, state).to_json()


@router.patch(
    "/v1/segments/{segment_id}",
    response_model=UploadStateModel,
    responses={
        **ERRORS,
        408: {"model": Problem, "description": "the body stalled"},
        429: {"model": Problem, "description": "too many chunks of this device at once"},
        460: {"model": Problem, "description": "Checksum Mismatch"},
    },
    tags=["upload"],
    openapi_extra=CHUNK_BODY,
)
async def append_chunk(
    segment_id: SegmentId,
    request: Request,
    auth: AuthedDevice,
    upload_offset: Annotated[int, Header(alias=H_UPLOAD_OFFSET, ge=0, le=2**62)],
    upload_checksum: UploadChecksum,
    dock: DockDep,
) -> dict[str, Any]:
    """Append a chunk: its checksum is the signed Content-Digest's, the offset the one held
    (both checked before the body is read); the body is written straight into the staged
    file at its offset, checked and hashed as it comes (dock/upload_live.py)."""
    check_chunk_checksum(upload_checksum, auth)
    dev = auth.device.device_id
    length = request.headers.get("content-length")
    store = dock.store
    writer = await run_in_threadpool(
        store.open_chunk, dev, segment_id, upload_offset, int(length) if length else None
    )
    ok = False
    try:
        await receive_into(writer, request)
        ok = True
    finally:
        appended = await run_in_threadpool(store.finish_chunk, writer, ok)
    dock.activity.chunk(dev, segment_id, appended.offset, appended.size, dock.clock())
    if appended.offset < appended.size:
        return appended.to_json()
    # the last chunk: completed at once, its receipt in the answer (a camera that asks for
    # completion all the same is given the same receipt): one round trip less a segment
    receipt = await run_in_threadpool(complete_upload, dock, auth.device, segment_id)
    return replace(appended, complete=True, receipt=receipt).to_json()


WRITE_BATCH = 1 << 20  # body bytes held before they go to the staged file


async def receive_into(writer: ChunkWriter, request: Request) -> None:
    """The body into the staged file (a chunk's, or a whole segment's: dock/routes/whole.py);
    a body cut before its end is a 400."""
    try:
        await _stream_into(writer, request)
    except ClientDisconnect:
        raise Refused(400, Code.INVALID, "connection closed before the body was complete") from None


async def _stream_into(writer: ChunkWriter, request: Request) -> None:
    """The body, checked against its digest as it comes, written (and hashed) into the
    staged file a MiB at a time in a worker thread, off the event loop, while the next MiB
    is received: one batch written at a time, in order, and the file never closed (by
    ``finish_chunk``) while a batch is being written into it."""
    held: list[bytes] = []
    n = 0
    writing: asyncio.Future[None] | None = None
    try:
        async for block in request.stream():
            held.append(block)
            n += len(block)
            if n >= WRITE_BATCH:
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(run_in_threadpool(_write_all, writer, held))
                held, n = [], 0
    except BaseException:
        if writing is not None:
            with contextlib.suppress(Exception):  # the body's failure is the one to tell
                await writing
        raise
    if writing is not None:
        await writing
    await run_in_threadpool(_write_all, writer, held)


def _write_all(writer: ChunkWriter, blocks: list[bytes]) -> None:
    """Write blocks into the staged file (a worker thread: a slow disk stalls this chunk,
    never the event loop and every other camera's request with it)."""
    for block in blocks:
        writer.write(block)


@router.post(
    "/v1/segments/{segment_id}/complete",
    response_model=SignedReceiptModel,
    responses=ERRORS,
    tags=["upload"],
)
def complete(segment_id: SegmentId, auth: AuthedDevice, dock: DockDep) -> dict[str, Any]:
    return complete_upload(dock, auth.device, segment_id).to_json()


def complete_upload(dock: Dock, dev: DeviceRecord, segment_id: str) -> SignedReceipt:
    """Verify, store and receipt a fully uploaded segment (or give its receipt again)."""
    state = dock.store.upload_state(dev.device_id, segment_id)
    if state is None:
        raise Refused(404, Code.NOT_FOUND, "no upload with this segment id")
    if state.complete:
        assert state.receipt is not None
        return with_proof(dock.translog, state.receipt)
    if state.offset != state.size:
        raise Refused(
            409, Code.INCOMPLETE, f"upload incomplete: {state.offset} of {state.size} bytes"
        )
    receipt = receive_segment(dock, dev, segment_id)
    dock.activity.completed(dev.device_id, segment_id, dock.clock())
    return receipt
