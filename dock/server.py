"""The dock's HTTP server: FastAPI app factory, ``serve()``, and a server thread for tests.

Endpoints (all under ``/v1``; the OpenAPI description is at ``/openapi.json``):

- ``GET  /v1/dock``                      the dock's public key (to pin at provisioning)
- ``POST /v1/enroll``                    bind a device id to its key with a one-time token
- ``POST /v1/time``                      the dock's time; the device's offset is recorded
- ``POST /v1/segments/{segment_id}``     create (or find) an upload: manifest, size, hash
- ``GET  /v1/segments/{segment_id}``     upload state: offset, complete, receipt
- ``PATCH /v1/segments/{segment_id}``    append a chunk at ``Upload-Offset`` with its checksum
- ``POST /v1/segments/{segment_id}/complete``  verify, store, log, answer with a receipt
- ``GET  /v1/status``                    the calling device's status (chain, gaps, revocation)
- ``/v1/admin/...``                      tokens, revocation, device status, custody log
  (``Authorization: Bearer <store/admin.token>``)

Device requests are signed (dock/protocol.py); every answer carries the dock's signature over
its status, body and the request's nonce. Refusals are 4xx with ``{"detail": "..."}``.
"""

import errno
import hashlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nacl.signing import SigningKey
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dock import enroll as enroll_mod
from dock.keys import (
    ADMIN_TOKEN_FILE,
    DOCK_KEY_FILE,
    load_or_create_signing_key,
    load_or_create_token,
)
from dock.pages import mount_pages
from dock.protocol import (
    DEVICE_ID_PATTERN,
    H_DOCK_KEY,
    H_DOCK_SIGNATURE,
    H_NONCE,
    H_UPLOAD_CHECKSUM,
    H_UPLOAD_OFFSET,
    HEX64_PATTERN,
    SEGMENT_ID_PATTERN,
    Code,
    ProtocolError,
    Receipt,
    SignedReceipt,
    b64d,
    is_nonce,
    key_id,
    parse_chunk_checksum,
    parse_signed_headers,
    segment_id_for,
    sign_receipt,
    sign_response,
    verify_request,
)
from dock.refusals import LogRefusals
from dock.store import (
    ChainReport,
    DeviceRecord,
    DirectoryStore,
    LogEntry,
    Store,
    StoreError,
    chain_report,
)
from dock.unsigned import add_unsigned_routes
from dock.verify import ManifestError, SegmentVerifier, default_verifier

log = logging.getLogger("bwv.dock")

FOREVER_US = 2**62


@dataclass(frozen=True)
class DockConfig:
    window_s: int = 300  # accepted skew between a request's timestamp and the dock's clock
    max_chunk_bytes: int = 8 << 20
    max_json_bytes: int = 1 << 20
    max_manifest_bytes: int = 256 << 10
    max_segment_bytes: int = 16 << 30


def wall_clock_us() -> int:
    """The dock's clock at the edge (the app takes it injected)."""
    return time.time_ns() // 1000


@dataclass
class Dock:
    """Everything one dock server needs; ``create_app`` turns it into an ASGI app."""

    store: Store
    key: SigningKey
    verifier: SegmentVerifier = field(default_factory=default_verifier)
    clock: Callable[[], int] = wall_clock_us
    config: DockConfig = field(default_factory=DockConfig)
    admin_token: str | None = None

    @property
    def public_key(self) -> bytes:
        return bytes(self.key.verify_key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def open_dock(
    store_dir: Path,
    *,
    clock: Callable[[], int] = wall_clock_us,
    verifier: SegmentVerifier | None = None,
    config: DockConfig | None = None,
    admin_api: bool = True,
) -> Dock:
    """The embedded dock on ``store_dir``: its key and admin token are made on first use."""
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    key = load_or_create_signing_key(store_dir / DOCK_KEY_FILE)
    token = load_or_create_token(store_dir / ADMIN_TOKEN_FILE) if admin_api else None
    return Dock(
        DirectoryStore(store_dir, key),
        key,
        verifier or default_verifier(),
        clock,
        config or DockConfig(),
        token,
    )


# --------------------------------------------------------------------------- models


class Problem(BaseModel):
    detail: str = Field(description="what is wrong, for a person")
    code: str | None = Field(
        default=None, description="what is wrong, for a program (dock.protocol.Code)"
    )


class DockInfo(BaseModel):
    api: str = "bwv-dock-v1"
    dock_public_key: str = Field(description="Ed25519 public key, hex: pin it on the device")
    dock_key_id: str


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    public_key: str = Field(pattern=HEX64_PATTERN, description="Ed25519 public key, hex")
    token: str = Field(min_length=1, max_length=200, description="one-time enrollment token")


class EnrollResponse(BaseModel):
    device_id: str
    key_id: str
    enrolled_at_us: int
    dock_public_key: str
    dock_key_id: str


class TimeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_time_us: int = Field(ge=-(2**62), le=2**62, description="device wall clock, Unix µs")


class TimeResponse(BaseModel):
    dock_time_us: int
    device_time_us: int
    offset_us: int = Field(description="dock time − device time")


class CreateUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    manifest: str = Field(min_length=1, max_length=400_000, description="base64 manifest")
    size: int = Field(ge=0, le=2**62, description="stored blob size in bytes")
    sha256: str = Field(pattern=HEX64_PATTERN, description="stored blob SHA-256, hex")


class ReceiptModel(BaseModel):
    device_id: str
    segment_id: str
    seq: int
    manifest_sha256: str
    stored_sha256: str
    stored_size: int
    received_at_us: int
    log_index: int
    log_entry_hash: str
    gap_before: bool
    dock_key_id: str
    type: str


class SignedReceiptModel(BaseModel):
    receipt: ReceiptModel
    signature: str = Field(description="base64 Ed25519 by the dock key over canonical receipt")


class UploadStateModel(BaseModel):
    segment_id: str
    size: int
    offset: int
    complete: bool
    receipt: SignedReceiptModel | None = None


class Gap(BaseModel):
    from_seq: int
    to_seq: int


class ChainModel(BaseModel):
    held: int
    first_seq: int | None
    last_seq: int | None
    gaps: list[Gap]
    breaks: list[int]


class DeviceStatus(BaseModel):
    device_id: str
    key_id: str
    enrolled_at_us: int
    revoked: bool
    revoked_at_us: int | None
    revoke_reason: str | None
    time_offset_us: int | None
    time_synced_at_us: int | None
    chain: ChainModel


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    ttl_s: int = Field(default=enroll_mod.DEFAULT_TTL_S, ge=1, le=enroll_mod.MAX_TTL_S)


class TokenResponse(BaseModel):
    token: str
    device_id: str | None
    expires_at_us: int


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


class LogEntryModel(BaseModel):
    index: int
    at_us: int
    actor: str
    action: str
    device_id: str | None
    segment_id: str | None
    sha256: str | None
    detail: dict[str, Any]
    prev_hash: str
    entry_hash: str
    signature: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 422)
}


# --------------------------------------------------------------------------- middleware


class Refused(HTTPException):
    """A 4xx with a protocol code: answered as ``{"detail": ..., "code": ...}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status, detail)
        self.code = code


class BodyTooLarge(Refused):
    def __init__(self, limit: int) -> None:
        super().__init__(413, Code.BODY_TOO_LARGE, f"request body larger than {limit} bytes")


class BodyLimit:
    """Refuse bodies over a limit (413) before reading them: Content-Length is checked up
    front and the bytes actually received are counted."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    await _send_problem(
                        send, 400, Code.INVALID, "Content-Length is not a byte count"
                    )
                    return
                if int(value) > limit:
                    await _send_problem(
                        send, 413, Code.BODY_TOO_LARGE, f"request body larger than {limit} bytes"
                    )
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return msg

        await self.app(scope, counted, send)


async def _send_problem(send: Send, status: int, code: str, detail: str) -> None:
    body = Problem(detail=detail, code=code).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SignResponses:
    """Sign every answer: status, body hash and the request's nonce, by the dock key."""

    def __init__(self, app: ASGIApp, key: SigningKey) -> None:
        self.app = app
        self.key = key
        self.key_id = key_id(bytes(key.verify_key)).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = ""
        for name, value in scope.get("headers", []):
            if name == H_NONCE.lower().encode():
                text = value.decode("latin-1")
                nonce = text if is_nonce(text) else ""
        start: Message | None = None
        chunks: list[bytes] = []

        async def buffered(msg: Message) -> None:
            nonlocal start
            if msg["type"] == "http.response.start":
                start = msg
                return
            if msg["type"] != "http.response.body" or start is None:
                await send(msg)
                return
            chunks.append(msg.get("body", b""))
            if msg.get("more_body", False):
                return
            body = b"".join(chunks)
            sig = sign_response(self.key, start["status"], nonce, body)
            headers = [
                *start.get("headers", []),
                (H_DOCK_SIGNATURE.lower().encode(), sig.encode()),
                (H_DOCK_KEY.lower().encode(), self.key_id),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)


async def _read_body(request: Request) -> bytes:
    try:
        return await request.body()
    except ClientDisconnect:
        raise Refused(400, Code.INVALID, "connection closed before the body was complete") from None


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


# --------------------------------------------------------------------------- app


def _problem(status: int, code: str, detail: str) -> Refused:
    return Refused(status, code, detail)


@dataclass(frozen=True)
class Authed:
    device: DeviceRecord
    body: bytes
    body_sha256: bytes


def create_app(dock: Dock) -> FastAPI:
    """The dock's ASGI application for ``dock`` (no module-level state)."""
    cfg = dock.config
    store = dock.store
    app = FastAPI(
        title="bwv dock",
        version="1",
        description="Receives signed, chained segments from body-worn cameras, "
        "verifies them, keeps a custody log and signs receipts.",
        docs_url=None,  # dock.pages serves /docs and /redoc from local files
        redoc_url=None,
    )

    def limit_for(scope: Scope) -> int:
        if scope.get("method") == "PATCH" and scope.get("path", "").startswith("/v1/segments/"):
            return cfg.max_chunk_bytes
        return cfg.max_json_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(SignResponses, key=dock.key)
    app.add_middleware(LogRefusals)  # outermost: sees every refusal, whoever made it
    mount_pages(app, dock.key_id)

    @app.exception_handler(Refused)
    async def _refused(_: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status_code)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.status)

    @app.exception_handler(OSError)
    async def _storage_error(_: Request, exc: OSError) -> JSONResponse:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        log.error("storage error: %s", exc)
        return JSONResponse(
            {
                "detail": "dock storage is full" if full else "dock storage error; try again later",
                "code": Code.STORAGE,
            },
            status_code=507 if full else 503,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(
                f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))
            )
        return JSONResponse(
            {"detail": "; ".join(parts) or "invalid request", "code": Code.INVALID}, status_code=422
        )

    # -- authentication

    def authenticate(method: str, raw_path: str, headers: Any, body: bytes, window: bool) -> Authed:
        try:
            h = parse_signed_headers(headers)
        except ProtocolError as exc:
            raise _problem(401, Code.UNSIGNED, str(exc)) from None
        device = store.get_device(h.device_id)
        if device is None:
            raise _problem(
                401, Code.UNKNOWN_DEVICE, f"unknown device {h.device_id!r}: enrol it first"
            )
        digest = hashlib.sha256(body).digest()
        if not verify_request(device.public_key, h, method, raw_path, body, digest.hex()):
            raise _problem(
                401, Code.BAD_SIGNATURE, "request signature does not verify with the device's key"
            )
        if device.revoked:
            raise _problem(403, Code.REVOKED, f"device {h.device_id} is revoked")
        now = dock.clock()
        if window and abs(now - h.timestamp_us) > cfg.window_s * 1_000_000:
            raise _problem(
                401,
                Code.STALE,
                f"request timestamp outside the dock's window "
                f"of {cfg.window_s} s (dock time {now} µs): "
                "sync time",
            )
        keep = now + 2 * cfg.window_s * 1_000_000 if window else FOREVER_US
        if not store.use_nonce(h.device_id, h.nonce, now, keep):
            raise _problem(401, Code.REPLAYED, "replayed request: nonce already used")
        return Authed(device, body, digest)

    async def authed(request: Request) -> Authed:
        body = await _read_body(request)
        return await run_in_threadpool(
            authenticate, request.method, _raw_path(request.scope), request.headers, body, True
        )

    async def authed_any_time(request: Request) -> Authed:
        body = await _read_body(request)
        return await run_in_threadpool(
            authenticate, request.method, _raw_path(request.scope), request.headers, body, False
        )

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if dock.admin_token is None:
            raise _problem(403, Code.ADMIN, "the admin API is disabled on this dock")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), dock.admin_token.encode()
        ):
            raise _problem(401, Code.ADMIN, "admin token required (Authorization: Bearer ...)")

    SegmentId = Annotated[
        str, PathParam(pattern=SEGMENT_ID_PATTERN, description="SHA-256 of the manifest, hex")
    ]
    DeviceId = Annotated[str, PathParam(pattern=DEVICE_ID_PATTERN)]

    # -- dock and enrollment

    @app.get("/v1/dock", response_model=DockInfo, tags=["dock"])
    def dock_info() -> DockInfo:
        return DockInfo(dock_public_key=dock.public_key.hex(), dock_key_id=dock.key_id)

    @app.post(
        "/v1/enroll",
        response_model=EnrollResponse,
        responses=ERRORS,
        tags=["device"],
        status_code=201,
    )
    async def enroll(req: EnrollRequest, request: Request) -> EnrollResponse:
        body = await _read_body(request)
        raw_path = _raw_path(request.scope)

        def run() -> EnrollResponse:
            try:
                h = parse_signed_headers(request.headers)
            except ProtocolError as exc:
                raise _problem(401, Code.UNSIGNED, str(exc)) from None
            pub = bytes.fromhex(req.public_key)
            if h.device_id != req.device_id:
                raise _problem(
                    401, Code.BAD_SIGNATURE, "signing header names another device than the body"
                )
            if not verify_request(pub, h, request.method, raw_path, body):
                raise _problem(
                    401, Code.BAD_SIGNATURE, "request not signed by the key being enrolled"
                )
            # no nonce kept: the token is one-time, so a replayed enrollment is refused
            now = dock.clock()
            rec = store.enroll(req.device_id, pub, enroll_mod.token_hash(req.token), now)
            log.info("enrolled device %s (key %s)", rec.device_id, rec.key_id)
            return EnrollResponse(
                device_id=rec.device_id,
                key_id=rec.key_id,
                enrolled_at_us=rec.enrolled_at_us,
                dock_public_key=dock.public_key.hex(),
                dock_key_id=dock.key_id,
            )

        return await run_in_threadpool(run)

    @app.post("/v1/time", response_model=TimeResponse, responses=ERRORS, tags=["device"])
    def dock_time(
        req: TimeRequest, auth: Annotated[Authed, Depends(authed_any_time)]
    ) -> TimeResponse:
        now = dock.clock()
        offset = now - req.device_time_us
        store.record_time_sync(auth.device.device_id, offset, now)
        return TimeResponse(dock_time_us=now, device_time_us=req.device_time_us, offset_us=offset)

    # -- uploads

    @app.post(
        "/v1/segments/{segment_id}",
        response_model=UploadStateModel,
        responses=ERRORS,
        tags=["upload"],
    )
    def create_upload(
        segment_id: SegmentId,
        req: CreateUpload,
        response: Response,
        auth: Annotated[Authed, Depends(authed)],
    ) -> dict[str, Any]:
        dev = auth.device.device_id
        try:
            manifest = b64d(req.manifest)
        except ProtocolError:
            raise _problem(422, Code.INVALID, "manifest: not valid base64") from None
        if len(manifest) > cfg.max_manifest_bytes:
            raise _problem(
                413, Code.TOO_LARGE, f"manifest larger than {cfg.max_manifest_bytes} bytes"
            )
        if segment_id_for(manifest) != segment_id:
            raise _problem(422, Code.MISMATCH, "segment id must be the SHA-256 of the manifest")
        if req.size > cfg.max_segment_bytes:
            raise _problem(
                413, Code.TOO_LARGE, f"segment larger than {cfg.max_segment_bytes} bytes"
            )
        try:
            f = dock.verifier.parse(manifest)
        except ManifestError as exc:
            raise _problem(422, Code.MANIFEST_INVALID, str(exc)) from None
        if f.device_id != dev:
            raise _problem(403, Code.OTHER_DEVICE, "the manifest names another device")
        if f.stored_sha256 != req.sha256:
            raise _problem(422, Code.MISMATCH, "sha256 is not the stored hash the manifest names")
        if f.stored_size != req.size:
            raise _problem(
                422, Code.MISMATCH, f"size {req.size} is not the manifest's {f.stored_size}"
            )
        held = store.held_segment(dev, seq=f.seq)
        if held is not None and held.segment_id != segment_id:
            raise _problem(
                409,
                Code.SEQ_REUSED,
                f"sequence number {f.seq} is already held as another segment: "
                "sequence numbers are never reused",
            )
        existing = store.upload_state(dev, segment_id)
        state = store.begin_upload(dev, segment_id, manifest, req.size, req.sha256, dock.clock())
        response.status_code = 200 if existing else 201
        return state.to_json()

    @app.get(
        "/v1/segments/{segment_id}",
        response_model=UploadStateModel,
        responses=ERRORS,
        tags=["upload"],
    )
    def upload_status(
        segment_id: SegmentId, auth: Annotated[Authed, Depends(authed)]
    ) -> dict[str, Any]:
        state = store.upload_state(auth.device.device_id, segment_id)
        if state is None:
            raise _problem(404, Code.NOT_FOUND, "no upload with this segment id")
        return state.to_json()

    @app.patch(
        "/v1/segments/{segment_id}",
        response_model=UploadStateModel,
        responses={**ERRORS, 460: {"model": Problem, "description": "Checksum Mismatch"}},
        tags=["upload"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/offset+octet-stream": {
                        "schema": {"type": "string", "format": "binary"}
                    },
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            }
        },
    )
    def append_chunk(
        segment_id: SegmentId,
        auth: Annotated[Authed, Depends(authed)],
        upload_offset: Annotated[int, Header(alias=H_UPLOAD_OFFSET, ge=0, le=2**62)],
        upload_checksum: Annotated[str, Header(alias=H_UPLOAD_CHECKSUM, max_length=200)],
    ) -> dict[str, Any]:
        try:
            digest = parse_chunk_checksum(upload_checksum)
        except ProtocolError as exc:
            raise _problem(400, Code.INVALID, str(exc)) from None
        if auth.body_sha256 != digest:
            raise _problem(460, Code.CHECKSUM, "chunk checksum mismatch: nothing was appended")
        return store.append_chunk(
            auth.device.device_id, segment_id, upload_offset, auth.body
        ).to_json()

    @app.post(
        "/v1/segments/{segment_id}/complete",
        response_model=SignedReceiptModel,
        responses=ERRORS,
        tags=["upload"],
    )
    def complete(segment_id: SegmentId, auth: Annotated[Authed, Depends(authed)]) -> dict[str, Any]:
        dev = auth.device
        state = store.upload_state(dev.device_id, segment_id)
        if state is None:
            raise _problem(404, Code.NOT_FOUND, "no upload with this segment id")
        if state.complete:
            assert state.receipt is not None
            return state.receipt.to_json()
        if state.offset != state.size:
            raise _problem(
                409, Code.INCOMPLETE, f"upload incomplete: {state.offset} of {state.size} bytes"
            )
        return _complete(dock, dev, segment_id).to_json()

    add_unsigned_routes(app, dock, authed)  # a segment's set-aside unsigned bytes

    # -- status

    def device_status(device: DeviceRecord) -> DeviceStatus:
        chain: ChainReport = chain_report(store.held_segments(device.device_id))
        return DeviceStatus(
            device_id=device.device_id,
            key_id=device.key_id,
            enrolled_at_us=device.enrolled_at_us,
            revoked=device.revoked,
            revoked_at_us=device.revoked_at_us,
            revoke_reason=device.revoke_reason,
            time_offset_us=device.time_offset_us,
            time_synced_at_us=device.time_synced_at_us,
            chain=ChainModel(**chain.to_json()),
        )

    @app.get("/v1/status", response_model=DeviceStatus, responses=ERRORS, tags=["device"])
    def status(auth: Annotated[Authed, Depends(authed)]) -> DeviceStatus:
        return device_status(auth.device)

    # -- admin

    @app.post(
        "/v1/admin/tokens",
        response_model=TokenResponse,
        responses=ERRORS,
        tags=["admin"],
        dependencies=[Depends(admin)],
        status_code=201,
    )
    def issue_token(req: TokenRequest) -> TokenResponse:
        t = enroll_mod.issue_token(store, dock.clock(), device_id=req.device_id, ttl_s=req.ttl_s)
        return TokenResponse(token=t.token, device_id=t.device_id, expires_at_us=t.expires_at_us)

    @app.get(
        "/v1/admin/devices",
        response_model=list[DeviceStatus],
        responses=ERRORS,
        tags=["admin"],
        dependencies=[Depends(admin)],
    )
    def admin_devices() -> list[DeviceStatus]:
        return [device_status(d) for d in store.list_devices()]

    @app.get(
        "/v1/admin/devices/{device_id}",
        response_model=DeviceStatus,
        responses=ERRORS,
        tags=["admin"],
        dependencies=[Depends(admin)],
    )
    def admin_device(device_id: DeviceId) -> DeviceStatus:
        device = store.get_device(device_id)
        if device is None:
            raise _problem(404, Code.NOT_FOUND, "no such device")
        return device_status(device)

    @app.post(
        "/v1/admin/devices/{device_id}/revoke",
        response_model=DeviceStatus,
        responses=ERRORS,
        tags=["admin"],
        dependencies=[Depends(admin)],
    )
    def revoke(device_id: DeviceId, req: RevokeRequest) -> DeviceStatus:
        device = store.revoke(device_id, req.reason, "technician", dock.clock())
        log.warning("revoked device %s", device_id)
        return device_status(device)

    @app.get(
        "/v1/admin/log",
        response_model=list[LogEntryModel],
        responses=ERRORS,
        tags=["admin"],
        dependencies=[Depends(admin)],
    )
    def custody_log(
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        return [_entry_json(e) for e in store.custody_log(after, limit)]

    return app


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


def _complete(dock: Dock, device: DeviceRecord, segment_id: str) -> SignedReceipt:
    """Verify a fully uploaded segment against what the dock holds, then store it."""
    store = dock.store
    dev = device.device_id
    with store.completing(dev, segment_id) as blob:
        state = store.upload_state(dev, segment_id)  # another request may have finished it
        if state is not None and state.complete and state.receipt is not None:
            return state.receipt
        manifest = store.manifest_of_upload(dev, segment_id)
        now = dock.clock()
        try:
            fields = dock.verifier.parse(manifest)
        except ManifestError as exc:
            store.reject_upload(dev, segment_id, [str(exc)], now)
            raise _problem(422, Code.MANIFEST_INVALID, f"segment refused: {exc}") from None
        prev = store.held_segment(dev, seq=fields.seq - 1) if fields.seq > 0 else None
        result = dock.verifier.verify(
            device.public_key, manifest, blob, prev.manifest_sha256 if prev else None
        )
        if not result.ok or result.fields is None:
            store.reject_upload(dev, segment_id, list(result.problems), now)
            log.warning(
                "refused segment %s of %s: %s", segment_id[:16], dev, "; ".join(result.problems)
            )
            code = (
                Code.CHAIN_BREAK
                if any(p.startswith("chain break") for p in result.problems)
                else Code.VERIFICATION
            )
            raise _problem(422, code, "segment failed verification: " + "; ".join(result.problems))

        def sign(fields_: dict[str, Any]) -> SignedReceipt:
            return sign_receipt(dock.key, Receipt(**fields_))

        try:
            receipt = store.commit_segment(dev, segment_id, result.fields, now, sign, result.gap)
        except StoreError as exc:
            if exc.status == 409:
                store.reject_upload(dev, segment_id, [str(exc)], now)
            raise
    log.info(
        "received segment %s of %s (seq %d, %d bytes)%s",
        segment_id[:16],
        dev,
        result.fields.seq,
        receipt.receipt.stored_size,
        " after a gap" if result.gap else "",
    )
    return receipt


# --------------------------------------------------------------------------- running


def serve(
    store_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8443,
    *,
    verifier: SegmentVerifier | None = None,
    config: DockConfig | None = None,
    log_level: str = "info",
    **uvicorn_kw: Any,
) -> None:
    """Run the dock on ``store_dir`` until interrupted (``bwv dock serve``)."""
    dock = open_dock(Path(store_dir), verifier=verifier, config=config)
    log.info("dock key %s, store %s, listening on %s:%d", dock.key_id, store_dir, host, port)
    uvicorn.run(
        create_app(dock), host=host, port=port, log_level=log_level, http="h11", **uvicorn_kw
    )


class ServerThread:
    """A real uvicorn server in a thread, bound before it starts (port 0: any free port)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every answer waits ~40 ms on Nagle and delayed ACKs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level="warning",
            http="h11",
            lifespan="off",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="dock-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("dock server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
