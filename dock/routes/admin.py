"""``/v1/admin/...``: enrollment tokens, devices, revocation and the custody log, for the
technician (``Authorization: Bearer <store/admin.token>``)."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from dock import enroll as enroll_mod
from dock.middleware import Refused
from dock.protocol import Code
from dock.routes.deps import DeviceId, DockDep, admin
from dock.routes.models import (
    ERRORS,
    DeviceStatus,
    LogEntryModel,
    RevokeRequest,
    TokenRequest,
    TokenResponse,
)
from dock.routes.status import device_status
from dock.store import LogEntry
from dock.strict import StrictJSONRoute

log = logging.getLogger("bwv.dock")

router = APIRouter(dependencies=[Depends(admin)], route_class=StrictJSONRoute)


@router.post(
    "/v1/admin/tokens",
    response_model=TokenResponse,
    responses=ERRORS,
    tags=["admin"],
    status_code=201,
)
def issue_token(req: TokenRequest, dock: DockDep) -> TokenResponse:
    t = enroll_mod.issue_token(dock.store, dock.clock(), device_id=req.device_id, ttl_s=req.ttl_s)
    return TokenResponse(token=t.token, device_id=t.device_id, expires_at_us=t.expires_at_us)


@router.get(
    "/v1/admin/devices", response_model=list[DeviceStatus], responses=ERRORS, tags=["admin"]
)
def admin_devices(dock: DockDep) -> list[DeviceStatus]:
    return [device_status(dock.store, d) for d in dock.store.list_devices()]


@router.get(
    "/v1/admin/devices/{device_id}", response_model=DeviceStatus, responses=ERRORS, tags=["admin"]
)
def admin_device(device_id: DeviceId, dock: DockDep) -> DeviceStatus:
    device = dock.store.get_device(device_id)
    if device is None:
        raise Refused(404, Code.NOT_FOUND, "no such device")
    return device_status(dock.store, device)


@router.post(
    "/v1/admin/devices/{device_id}/revoke",
    response_model=DeviceStatus,
    responses=ERRORS,
    tags=["admin"],
)
def revoke(device_id: DeviceId, req: RevokeRequest, dock: DockDep) -> DeviceStatus:
    device = dock.store.revoke(device_id, req.reason, "technician", dock.clock())
    log.warning("revoked device %s", device_id)
    return device_status(dock.store, device)


@router.get("/v1/admin/log", response_model=list[LogEntryModel], responses=ERRORS, tags=["admin"])
def custody_log(
    dock: DockDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    return [_entry_json(e) for e in dock.store.custody_log(after, limit)]


def _entry_json(e: LogEntry) -> dict[str, Any]:
    return {
        "index": e.index,
        "at_us": e.at_us,
        "actor": e.actor,
        "action": e.action,
        "device_id": e.device_id,
        "segment_id": e.segment_id,
        "sha256": e.sha256,
        "detail": e.detail,
        "prev_hash": e.prev_hash,
        "entry_hash": e.entry_hash,
        "signature": e.signature,
    }
