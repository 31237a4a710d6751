"""The dock's ASGI layers around its routes: refusals as ``{"detail", "code"}`` answers
(``Refused`` and the exception handlers), the body limit (``BodyLimit``) and the signature
on every answer (``SignResponses``). ``dock/refusals.py`` logs the refusals."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nacl.signing import SigningKey
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dock.protocol import (
    H_DOCK_KEY,
    H_DOCK_SIGNATURE,
    H_NONCE,
    Code,
    is_nonce,
    key_id,
    sign_response,
)
from dock.routes.models import Problem
from dock.store import StoreError

log = logging.getLogger("bwv.dock")

AUTHED_STATE = "bwv_authed"  # where dock.gate.DeviceGate leaves the authenticated request


class Refused(HTTPException):
    """A 4xx with a protocol code: answered as ``{"detail": ..., "code": ...}``."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(status, detail)
        self.code = code


class BodyTooLarge(Refused):
    def __init__(self, limit: int) -> None:
        super().__init__(413, Code.BODY_TOO_LARGE, f"request body larger than {limit} bytes")


# --------------------------------------------------------------------------- exceptions


def _note_refusal(request: Request, status: int, code: str | None, detail: object) -> None:
    """Tell the dock's upload activity (dock/activity.py) of a refusal answered to an
    authenticated device (an unauthenticated request names no device worth believing)."""
    authed = request.scope.get("state", {}).get(AUTHED_STATE)
    dock = getattr(request.app.state, "dock", None)
    activity = getattr(dock, "activity", None)
    if authed is None or dock is None or activity is None:
        return
    segment = request.scope.get("path_params", {}).get("segment_id")
    segment = segment if isinstance(segment, str) else None
    activity.refused(authed.device.device_id, segment, status, code, str(detail), dock.clock())


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    _note_refusal(request, exc.status_code, exc.code, exc.detail)
    return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status_code)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    _note_refusal(request, exc.status, exc.code, exc)
    return JSONResponse({"detail": str(exc), "code": exc.code}, status_code=exc.status)


async def _storage_error(_: Request, exc: Exception) -> JSONResponse:
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    log.error("storage error: %s", exc)
    return JSONResponse(
        {
            "detail": "dock storage is full" if full else "dock storage error; try again later",
            "code": Code.STORAGE,
        },
        status_code=507 if full else 503,
    )


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(
            f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))
        )
    detail = "; ".join(parts) or "invalid request"
    _note_refusal(request, 422, Code.INVALID, detail)
    return JSONResponse({"detail": detail, "code": Code.INVALID}, status_code=422)


def add_exception_handlers(app: FastAPI) -> None:
    """Answer refusals, store errors, storage failures and invalid input as problems."""
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(RequestValidationError, _invalid)


# --------------------------------------------------------------------------- body limit


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
                    await send_problem(
                        send, 400, Code.INVALID, "Content-Length is not a byte count", close=True
                    )
                    return
                if int(value) > limit:
                    await send_problem(
                        send,
                        413,
                        Code.BODY_TOO_LARGE,
                        f"request body larger than {limit} bytes",
                        close=True,
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


async def send_problem(
    send: Send, status: int, code: str, detail: str, *, close: bool = False
) -> None:
    """Answer a refusal from an ASGI layer; ``close``: and close the connection (the
    request's body was not read)."""
    body = Problem(detail=detail, code=code).model_dump_json().encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- signing


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
