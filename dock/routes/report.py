"""``POST /v1/device/report``: what a camera reports of itself (firmware version, battery,
storage, what it has queued), signed like every device request; the dock keeps the latest
per camera (``Store.record_report``: telemetry, not a custody event) for the console's
cameras and uploads pages (dock/fleet.py)."""

from __future__ import annotations

from fastapi import APIRouter

from dock.routes.deps import AuthedDevice, DockDep
from dock.routes.models import ERRORS, DeviceReport, DeviceReportAck
from dock.strict import StrictJSONRoute

router = APIRouter(route_class=StrictJSONRoute)


@router.post("/v1/device/report", response_model=DeviceReportAck, responses=ERRORS, tags=["device"])
def device_report(req: DeviceReport, auth: AuthedDevice, dock: DockDep) -> DeviceReportAck:
    now = dock.clock()
    dev = auth.device.device_id
    dock.store.record_report(dev, req.model_dump(), now)
    return DeviceReportAck(device_id=dev, received_at_us=now)
