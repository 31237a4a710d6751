"""A device's status at the dock (enrolment, revocation, time offset, chain): the calling
device's own (``GET /v1/status``); the admin routes list every device's."""

from fastapi import APIRouter

from dock.routes.deps import AuthedDevice, DockDep
from dock.routes.models import ERRORS, ChainModel, DeviceStatus
from dock.store import DeviceRecord, Store, chain_report

router = APIRouter()


def device_status(store: Store, device: DeviceRecord) -> DeviceStatus:
    retired = [r.seq for r in store.retired_records(device.device_id)]
    chain = chain_report(store.held_segments(device.device_id), retired)
    return DeviceStatus(
        device_id=device.device_id,
        key_id=device.key_id,
        key_store=device.key_store,
        attested_by=device.attested_by,
        enrolled_at_us=device.enrolled_at_us,
        revoked=device.revoked,
        revoked_at_us=device.revoked_at_us,
        revoke_reason=device.revoke_reason,
        time_offset_us=device.time_offset_us,
        time_synced_at_us=device.time_synced_at_us,
        chain=ChainModel(**chain.to_json()),
    )


@router.get("/v1/status", response_model=DeviceStatus, responses=ERRORS, tags=["device"])
def status(auth: AuthedDevice, dock: DockDep) -> DeviceStatus:
    out = device_status(dock.store, auth.device)
    if dock.translog is not None:
        out.log = dock.translog.status()
    return out
