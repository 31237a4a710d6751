"""A held segment's set-aside unsigned bytes (dock/unsigned.py), tus-style:

- ``GET   /v1/segments/{segment_id}/unsigned``  where the upload stands (offset, receipt)
- ``PATCH /v1/segments/{segment_id}/unsigned``  append a chunk; the last byte completes it
"""

from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from dock.instance import Dock
from dock.protocol import (
    H_UPLOAD_OFFSET,
    SEGMENT_ID_PATTERN,
)
from dock.receipts import sign_unsigned_receipt
from dock.routes.deps import AuthedDevice, DockDep, check_chunk_checksum, read_body
from dock.routes.models import CHUNK_BODY, Problem, UnsignedStateModel, UploadChecksum
from dock.store_sqlite import DirectoryStore
from dock.unsigned import Expected, UnsignedTails, expected_unsigned

HeldSegmentId = Annotated[
    str, PathParam(pattern=SEGMENT_ID_PATTERN, description="the held segment's id (its hash)")
]

RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 408, 409, 413, 422, 429, 460, 507)
}

router = APIRouter()


def _tails(dock: Dock) -> UnsignedTails:
    # the set-aside bytes are kept in the embedded store's index (dock/unsigned.py)
    return UnsignedTails(cast(DirectoryStore, dock.store))


def _expected(dock: Dock, device_id: str, segment_id: str) -> Expected:
    return expected_unsigned(dock.store, dock.verifier, device_id, segment_id)


@router.get(
    "/v1/segments/{segment_id}/unsigned",
    response_model=UnsignedStateModel,
    responses=RESPONSES,
    tags=["upload"],
)
def unsigned_status(segment_id: HeldSegmentId, auth: AuthedDevice, dock: DockDep) -> dict[str, Any]:
    dev = auth.device.device_id
    return _tails(dock).state(dev, segment_id, _expected(dock, dev, segment_id)).to_json()


@router.patch(
    "/v1/segments/{segment_id}/unsigned",
    response_model=UnsignedStateModel,
    responses=RESPONSES,
    tags=["upload"],
    openapi_extra=CHUNK_BODY,
)
async def append_unsigned(
    segment_id: HeldSegmentId,
    request: Request,
    auth: AuthedDevice,
    upload_offset: Annotated[int, Header(alias=H_UPLOAD_OFFSET, ge=0, le=2**62)],
    upload_checksum: UploadChecksum,
    dock: DockDep,
) -> dict[str, Any]:
    check_chunk_checksum(upload_checksum, auth)
    dev = auth.device.device_id
    body = await read_body(request)  # after authentication; dock.gate checks its digest

    def append() -> dict[str, Any]:
        return (
            _tails(dock)
            .append(
                dev,
                segment_id,
                _expected(dock, dev, segment_id),
                upload_offset,
                body,
                dock.clock(),
                lambda r: sign_unsigned_receipt(dock.key, r),
            )
            .to_json()
        )

    return await run_in_threadpool(append)
