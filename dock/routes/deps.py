"""What the dock's routes depend on: the dock itself (``get_dock``), an authenticated
device request (``authed``, made by dock.gate), the admin token (``admin``), and the
path parameters' types."""

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi import Path as PathParam
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from dock.instance import Dock
from dock.middleware import AUTHED_STATE, Refused
from dock.protocol import (
    DEVICE_ID_PATTERN,
    DIGEST_SHA256,
    H_CONTENT_DIGEST,
    H_DEVICE,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
    NONCE_PATTERN,
    SEGMENT_ID_PATTERN,
    Code,
    ProtocolError,
    parse_chunk_checksum,
    parse_signed_headers,
    verify_request,
)
from dock.store import DeviceRecord

BAD_SIGNATURE_DETAIL = (
    "request signature does not verify: this device id is not enrolled with this key"
)


def dock_of(request: Request) -> Dock:
    """The dock this app serves (``create_app`` puts it in ``app.state.dock``)."""
    dock: Dock = request.app.state.dock
    return dock


async def get_dock(request: Request) -> Dock:
    """``dock_of`` as a dependency: ``async`` because FastAPI runs a plain function in a worker
    thread, a hop each request would wait for."""
    return dock_of(request)


DockDep = Annotated[Dock, Depends(get_dock)]

SegmentId = Annotated[
    str, PathParam(pattern=SEGMENT_ID_PATTERN, description="SHA-256 of the manifest, hex")
]
DeviceId = Annotated[str, PathParam(pattern=DEVICE_ID_PATTERN)]


@dataclass(frozen=True)
class Authed:
    device: DeviceRecord
    body_sha256: bytes  # as the signed Content-Digest declares it (dock.gate checks the body)
    # its algorithm: the body's SHA-256, or a whole segment's stored digest (bwv-stored:
    # checked as the segment is written, dock/routes/whole.py)
    body_digest: str = DIGEST_SHA256


def check_chunk_checksum(upload_checksum: str, auth: Authed) -> None:
    """A chunk's ``Upload-Checksum`` must be the signed Content-Digest (both checked before
    the body is read; dock.gate checks the body against the digest as it comes)."""
    try:
        digest = parse_chunk_checksum(upload_checksum)
    except ProtocolError as exc:
        raise Refused(400, Code.INVALID, str(exc)) from None
    if auth.body_digest != DIGEST_SHA256 or auth.body_sha256 != digest:
        raise Refused(
            460,
            Code.CHECKSUM,
            "chunk checksum mismatch: Upload-Checksum is not the signed Content-Digest",
        )


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


def authenticate(dock: Dock, method: str, path: str, headers: Any, window: bool) -> Authed:
    """The enrolled, unrevoked device that signed this request's headers (fresh, never
    replayed); the body is not read here (dock.gate checks it against the signed digest)."""
    try:
        h = parse_signed_headers(headers)
    except ProtocolError as exc:
        raise Refused(401, Code.UNSIGNED, str(exc)) from None
    device = dock.store.get_device(h.device_id)
    if device is None or not verify_request(device.public_key, h, method, path, None):
        # one answer for an unknown id and a wrong key: ids cannot be probed
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
    keep_s = 2 * window_s if window else dock.config.wall.time_nonce_keep_s
    if not dock.store.use_nonce(h.device_id, h.nonce, now, now + keep_s * 1_000_000):
        raise Refused(401, Code.REPLAYED, "replayed request: nonce already used")
    algorithm, digest = h.body_digest
    return Authed(device, digest, algorithm)


async def authed(
    request: Request,
    _device: Annotated[str, Header(alias=H_DEVICE, pattern=DEVICE_ID_PATTERN)],
    _timestamp: Annotated[
        str, Header(alias=H_TIMESTAMP, pattern=r"^-?[0-9]{1,19}$", description="Unix µs")
    ],
    _nonce: Annotated[str, Header(alias=H_NONCE, pattern=NONCE_PATTERN)],
    _digest: Annotated[
        str,
        Header(
            alias=H_CONTENT_DIGEST,
            pattern=r"^(sha-256|bwv-stored)=:[A-Za-z0-9+/]{43}=:$",
            description="RFC 9530: the body's SHA-256 (signed: checked before the body is read); "
            "for a whole segment's PUT, bwv-stored: its stored digest",
        ),
    ],
    _signature: Annotated[
        str, Header(alias=H_SIGNATURE, description="base64 Ed25519 over the request string")
    ],
) -> Authed:
    """The device request dock.gate.DeviceGate authenticated (the signed routes only); the
    signing headers are named here for the API's description, and checked by the gate.
    ``async``: nothing here blocks, and a plain function would cost a hop to a worker thread."""
    found = request.scope.get("state", {}).get(AUTHED_STATE)
    if not isinstance(found, Authed):
        raise Refused(401, Code.UNSIGNED, "unsigned request")
    dock = dock_of(request)
    dock.activity.seen(found.device.device_id, dock.clock())  # the console's "last seen"
    return found


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
