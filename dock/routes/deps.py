"""What the dock's routes depend on: the dock itself (``get_dock``), an authenticated
device request (``authed``, ``authed_any_time``), the admin token (``admin``), and the
path parameters' types."""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from dock.instance import Dock
from dock.middleware import Refused
from dock.protocol import (
    DEVICE_ID_PATTERN,
    SEGMENT_ID_PATTERN,
    Code,
    ProtocolError,
    parse_signed_headers,
    verify_request,
)
from dock.store import DeviceRecord

FOREVER_US = 2**62
BAD_SIGNATURE_DETAIL = (
    "request signature does not verify: this device id is not enrolled with this key"
)


def get_dock(request: Request) -> Dock:
    """The dock this app serves (``create_app`` puts it in ``app.state.dock``)."""
    dock: Dock = request.app.state.dock
    return dock


DockDep = Annotated[Dock, Depends(get_dock)]

SegmentId = Annotated[
    str, PathParam(pattern=SEGMENT_ID_PATTERN, description="SHA-256 of the manifest, hex")
]
DeviceId = Annotated[str, PathParam(pattern=DEVICE_ID_PATTERN)]


@dataclass(frozen=True)
class Authed:
    device: DeviceRecord
    body: bytes
    body_sha256: bytes


async def read_body(request: Request) -> bytes:
    try:
        return await request.body()
    except ClientDisconnect:
        raise Refused(400, Code.INVALID, "connection closed before the body was complete") from None


def raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def authenticate(
    dock: Dock, method: str, path: str, headers: Any, body: bytes, window: bool
) -> Authed:
    """The enrolled, unrevoked device that signed this request (fresh, never replayed)."""
    try:
        h = parse_signed_headers(headers)
    except ProtocolError as exc:
        raise Refused(401, Code.UNSIGNED, str(exc)) from None
    device = dock.store.get_device(h.device_id)
    digest = hashlib.sha256(body).digest()
    if device is None or not verify_request(
        device.public_key, h, method, path, body, digest.hex()
    ):  # one answer for an unknown id and a wrong key: ids cannot be probed
        raise Refused(401, Code.BAD_SIGNATURE, BAD_SIGNATURE_DETAIL)
    if device.revoked:
        raise Refused(403, Code.REVOKED, f"device {h.device_id} is revoked")
    now = dock.clock()
    window_s = dock.config.window_s
    if window and abs(now - h.timestamp_us) > window_s * 1_000_000:
        raise Refused(
            401,
            Code.STALE,
            f"request timestamp outside the dock's window "
            f"of {window_s} s (dock time {now} µs): "
            "sync time",
        )
    keep = now + 2 * window_s * 1_000_000 if window else FOREVER_US
    if not dock.store.use_nonce(h.device_id, h.nonce, now, keep):
        raise Refused(401, Code.REPLAYED, "replayed request: nonce already used")
    return Authed(device, body, digest)


async def _authed(request: Request, dock: Dock, window: bool) -> Authed:
    body = await read_body(request)
    return await run_in_threadpool(
        authenticate, dock, request.method, raw_path(request.scope), request.headers, body, window
    )


async def authed(request: Request, dock: DockDep) -> Authed:
    """A signed device request whose timestamp is within the dock's window."""
    return await _authed(request, dock, True)


async def authed_any_time(request: Request, dock: DockDep) -> Authed:
    """A signed device request at any timestamp (``/v1/time``: the device's clock may be off)."""
    return await _authed(request, dock, False)


AuthedDevice = Annotated[Authed, Depends(authed)]


def admin(dock: DockDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """The admin token in ``Authorization: Bearer``; refused when the admin API is off."""
    if dock.admin_token is None:
        raise Refused(403, Code.ADMIN, "the admin API is disabled on this dock")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), dock.admin_token.encode()
    ):
        raise Refused(401, Code.ADMIN, "admin token required (Authorization: Bearer ...)")
