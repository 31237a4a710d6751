"""A segment's upload, tus-style: create (or find) it with its manifest, size and hash,
read where it stands, append chunks at ``Upload-Offset``, and complete it (verify, store,
log, receipt: dock/receive.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response

from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import (
    H_UPLOAD_CHECKSUM,
    H_UPLOAD_OFFSET,
    Code,
    ProtocolError,
    b64d,
    parse_chunk_checksum,
    segment_id_for,
)
from dock.receive import receive_segment
from dock.routes.deps import AuthedDevice, DockDep, SegmentId
from dock.routes.models import (
    CHUNK_BODY,
    ERRORS,
    CreateUpload,
    Problem,
    SignedReceiptModel,
    UploadStateModel,
)
from dock.verify import ManifestError

router = APIRouter()


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
    if f.stored_sha256 != req.sha256:
        raise Refused(422, Code.MISMATCH, "sha256 is not the stored hash the manifest names")
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
    dev = auth.device.device_id
    manifest = _manifest_of(dock, segment_id, req)
    _check_declared(dock, dev, segment_id, req, manifest)
    store = dock.store
    existing = store.upload_state(dev, segment_id)
    state = store.begin_upload(dev, segment_id, manifest, req.size, req.sha256, dock.clock())
    response.status_code = 200 if existing else 201
    return state.to_json()


@router.get(
    "/v1/segments/{segment_id}", response_model=UploadStateModel, responses=ERRORS, tags=["upload"]
)
def upload_status(segment_id: SegmentId, auth: AuthedDevice, dock: DockDep) -> dict[str, Any]:
    state = dock.store.upload_state(auth.device.device_id, segment_id)
    if state is None:
        raise Refused(404, Code.NOT_FOUND, "no upload with this segment id")
    return state.to_json()


@router.patch(
    "/v1/segments/{segment_id}",
    response_model=UploadStateModel,
    responses={**ERRORS, 460: {"model": Problem, "description": "Checksum Mismatch"}},
    tags=["upload"],
    openapi_extra=CHUNK_BODY,
)
def append_chunk(
    segment_id: SegmentId,
    auth: AuthedDevice,
    upload_offset: Annotated[int, Header(alias=H_UPLOAD_OFFSET, ge=0, le=2**62)],
    upload_checksum: Annotated[str, Header(alias=H_UPLOAD_CHECKSUM, max_length=200)],
    dock: DockDep,
) -> dict[str, Any]:
    try:
        digest = parse_chunk_checksum(upload_checksum)
    except ProtocolError as exc:
        raise Refused(400, Code.INVALID, str(exc)) from None
    if auth.body_sha256 != digest:
        raise Refused(460, Code.CHECKSUM, "chunk checksum mismatch: nothing was appended")
    state = dock.store.append_chunk(auth.device.device_id, segment_id, upload_offset, auth.body)
    return state.to_json()


@router.post(
    "/v1/segments/{segment_id}/complete",
    response_model=SignedReceiptModel,
    responses=ERRORS,
    tags=["upload"],
)
def complete(segment_id: SegmentId, auth: AuthedDevice, dock: DockDep) -> dict[str, Any]:
    dev = auth.device
    state = dock.store.upload_state(dev.device_id, segment_id)
    if state is None:
        raise Refused(404, Code.NOT_FOUND, "no upload with this segment id")
    if state.complete:
        assert state.receipt is not None
        return state.receipt.to_json()
    if state.offset != state.size:
        raise Refused(
            409, Code.INCOMPLETE, f"upload incomplete: {state.offset} of {state.size} bytes"
        )
    return receive_segment(dock, dev, segment_id).to_json()
