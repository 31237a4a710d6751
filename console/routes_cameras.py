"""The cameras page (``/cameras``): every enrolled camera (key id, firmware, last seen, clock
offset and its quality, battery and storage as last reported), revoked ones apart; a form to
enrol one (a one-time token, shown once as text and as a QR code) and one to revoke one.

Viewing needs ``cameras.view``; enrolling and revoking ``cameras.change`` and the session's
form token. Both changes are the dock's own custody events (``token_issued``, ``revoked``),
naming the account (``account:<name>``). The token is never stored (only its SHA-256, by the
dock), never put in a URL, and the page that shows it is not cached.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from console.auth import check_csrf, console_of, require
from console.core import Account
from console.qr import qr_svg
from console.render import render
from dock.enroll import DEFAULT_TTL_S, MAX_TTL_S, issue_token
from dock.fleet import CameraRow, camera_rows
from dock.protocol import is_device_id
from dock.store import Store, StoreError
from dock.tls import fingerprint

router = APIRouter()

TTL_CHOICES = ((15 * 60, "15 minutes"), (3600, "1 hour"), (8 * 3600, "8 hours"), (86400, "1 day"))
MAX_REASON = 500

Viewer = Annotated[Account, Depends(require("cameras.view"))]
Changer = Annotated[Account, Depends(require("cameras.change"))]


def _page(
    request: Request,
    account: Account,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    device_id: str = "",
) -> Response:
    console = console_of(request)
    rows = camera_rows(console.dock.store, console.dock.activity, console.now_us())
    return render(
        request,
        "cameras.html",
        account,
        status=status,
        active=[r for r in rows if not r.revoked],
        revoked=[r for r in rows if r.revoked],
        ttl_choices=TTL_CHOICES,
        default_ttl=DEFAULT_TTL_S,
        error=error,
        notice=notice,
        device_id=device_id,
        offset_text=offset_text,
        may_change=account.may("cameras.change"),
    )


def offset_text(row: CameraRow) -> str:
    """The camera's clock against the dock's at its last sync, for a person."""
    if row.clock_offset_us is None:
        return "never synced"
    ms = row.clock_offset_us / 1000
    if abs(ms) < 1:
        return "in step"
    way = "behind" if ms > 0 else "ahead of"  # offset = dock − camera
    amount = f"{abs(ms):.0f} ms" if abs(ms) < 10_000 else f"{abs(ms) / 1000:.1f} s"
    return f"{amount} {way} the dock"


@router.get("/cameras")
def cameras(request: Request, account: Viewer) -> Response:
    notice = {"revoked": "The camera is revoked: the dock refuses it from now on."}.get(
        request.query_params.get("done", "")
    )
    return _page(request, account, notice=notice)


@router.post("/cameras/enrol", dependencies=[Depends(check_csrf)])
def enrol(
    request: Request,
    account: Changer,
    device_id: Annotated[str, Form(max_length=200)] = "",
    ttl_s: Annotated[int, Form()] = DEFAULT_TTL_S,
) -> Response:
    console = console_of(request)
    device_id = device_id.strip()
    problem = _enrol_problem(console.dock.store, device_id, ttl_s)
    if problem is not None:
        return _page(request, account, 400, error=problem, device_id=device_id)
    issued = issue_token(
        console.dock.store, console.now_us(), device_id=device_id, ttl_s=ttl_s, actor=account.actor
    )
    return render(
        request,
        "camera_token.html",
        account,
        issued=issued,
        qr=qr_svg(issued.token, f"Enrolment token for {device_id}"),
        dock_fingerprint=fingerprint(console.dock.public_key),
    )


def _enrol_problem(store: Store, device_id: str, ttl_s: int) -> str | None:
    if not is_device_id(device_id):
        return (
            "Give the camera's device id: letters, digits, '.', '_' or '-' "
            f"(as it is set on the camera), not {device_id!r}."
        )
    if not 0 < ttl_s <= MAX_TTL_S:
        return "Choose how long the token stays valid."
    known = store.get_device(device_id)
    if known is not None and known.revoked:
        return f"{device_id} is revoked: enrol the camera under a new device id."
    if known is not None:
        return f"{device_id} is enrolled already (key {known.key_id})."
    return None


@router.post("/cameras/revoke", dependencies=[Depends(check_csrf)])
def revoke(
    request: Request,
    account: Changer,
    device_id: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    console = console_of(request)
    reason = " ".join(reason.split())
    device = console.dock.store.get_device(device_id) if is_device_id(device_id) else None
    if device is None:
        return _page(request, account, 404, error=f"No camera {device_id!r} is enrolled here.")
    if not reason or len(reason) > MAX_REASON:
        return _page(
            request, account, 400, error=f"Say why {device_id} is revoked (at most 500 characters)."
        )
    if not device.revoked:
        try:
            console.dock.store.revoke(device_id, reason, account.actor, console.now_us())
        except StoreError as exc:
            return _page(request, account, 503, error=f"The dock could not revoke it: {exc}")
    return RedirectResponse("/cameras?done=revoked", status_code=303)
