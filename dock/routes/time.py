"""``POST /v1/time``: the dock's time; the device's offset is recorded. Signed, but taken at
any timestamp (a device whose clock is off syncs here: dock/gate.py lets it)."""

from fastapi import APIRouter

from dock.routes.deps import AuthedDevice, DockDep
from dock.routes.models import ERRORS, TimeRequest, TimeResponse
from dock.strict import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/time", response_model=TimeResponse, responses=ERRORS, tags=["device"])
def dock_time(req: TimeRequest, auth: AuthedDevice, dock: DockDep) -> TimeResponse:
    now = dock.clock()
    offset = now - req.device_time_us
    dock.store.record_time_sync(auth.device.device_id, offset, now)
    return TimeResponse(dock_time_us=now, device_time_us=req.device_time_us, offset_us=offset)
