"""Authenticate before reading (``DeviceGate``): a device request's signature covers its
headers, the body's ``Content-Digest`` among them, so the dock checks it, and the device,
timestamp and nonce, before it reads a byte of the body. An unauthenticated request is
answered at once and its connection closed; it never makes the dock hold its body.

The body is then checked against the signed digest as it streams in (the route that
consumes it sees a refusal, never a body that does not match), a body that stays silent
for ``body_timeout_s`` is cut (408), and a device may send only so many chunks at once."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dock.instance import Dock
from dock.middleware import Refused, send_problem
from dock.protocol import DIGEST_STORED, Code
from dock.routes.deps import AUTHED_STATE, authenticate, raw_path
from dock.store import StoreError

# the routes a device signs; /v1/time takes any timestamp (a device whose clock is off)
SIGNED = re.compile(r"/v1/(time|status|device/report|segments/[^/]+(/complete|/unsigned)?)")
ANY_TIME = frozenset({"/v1/time"})
WHOLE = re.compile(r"/v1/segments/[^/]+")  # PUT: a whole segment (dock/routes/whole.py)
BODIES = frozenset({"PATCH", "PUT"})  # the requests that carry footage


class DeviceGate:
    def __init__(self, app: ASGIApp, dock: Dock) -> None:
        self.app = app
        self.dock = dock
        self.inflight: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not SIGNED.fullmatch(path) or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            authed = await run_in_threadpool(
                authenticate,
                self.dock,
                scope["method"],
                raw_path(scope),
                headers,
                path not in ANY_TIME,
            )
        except (Refused, StoreError) as exc:
            status, code, detail = _problem_of(exc)
            await send_problem(send, status, code, detail, close=True)
            return
        device = authed.device.device_id
        chunk = scope["method"] in BODIES
        whole = scope["method"] == "PUT" and WHOLE.fullmatch(path) is not None
        if (authed.body_digest == DIGEST_STORED) != whole:
            await send_problem(
                send,
                400,
                Code.INVALID,
                "Content-Digest: bwv-stored is for a whole segment's PUT, which takes only it",
                close=True,
            )
            return
        limits = self.dock.config.wall
        if chunk and self.inflight[device] >= limits.max_inflight_per_device:
            await send_problem(
                send, 429, Code.BUSY, "this device is sending enough chunks already", close=True
            )
            return
        scope.setdefault("state", {})[AUTHED_STATE] = authed
        # a whole segment's stored digest is checked where it is taken (dock/routes/whole.py)
        declared = None if whole else authed.body_sha256
        body = _CheckedBody(receive, declared, limits.body_timeout_s, chunk, headers)
        if chunk:
            self.inflight[device] += 1
        try:
            await self.app(scope, body.receive, body.closing(send))
        finally:
            if chunk:
                self.inflight[device] -= 1
                if self.inflight[device] <= 0:
                    del self.inflight[device]


def _problem_of(exc: Refused | StoreError) -> tuple[int, str, str]:
    if isinstance(exc, Refused):
        return exc.status_code, exc.code, str(exc.detail)
    return exc.status, exc.code, str(exc)


class _CheckedBody:
    """The request's body as the app receives it: hashed as it comes, checked against the
    signed digest at its end (``declared``; None: the route checks it), and cut when it
    stalls."""

    def __init__(
        self,
        receive: Receive,
        declared: bytes | None,
        timeout_s: float,
        chunk: bool,
        headers: Headers,
    ) -> None:
        self._receive = receive
        self._declared = declared
        self._timeout_s = timeout_s
        self._chunk = chunk
        self._hash = hashlib.sha256() if declared is not None else None
        # a request without a body (no length, not chunked) is complete from the start
        self.complete = (
            headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
        )

    async def receive(self) -> Message:
        try:
            async with asyncio.timeout(self._timeout_s):  # no task per message (wait_for)
                msg = await self._receive()
        except TimeoutError:
            raise Refused(
                408, Code.TIMEOUT, f"request body stalled for {self._timeout_s:g} s"
            ) from None
        if msg["type"] != "http.request":
            return msg
        if self._hash is not None:
            self._hash.update(msg.get("body", b""))
        if not msg.get("more_body", False):
            self.complete = True
            if self._hash is not None and self._hash.digest() != self._declared:
                if self._chunk:
                    raise Refused(
                        460, Code.CHECKSUM, "chunk checksum mismatch: the body is not its digest"
                    )
                raise Refused(400, Code.INVALID, "body does not match its Content-Digest")
        return msg

    def closing(self, send: Send) -> Send:
        """``send``, closing the connection after an answer given before the whole body
        came (so a client cannot trickle the rest of it forever)."""

        async def send_(msg: Message) -> None:
            if msg["type"] == "http.response.start" and not self.complete:
                msg = {**msg, "headers": [*msg.get("headers", []), (b"connection", b"close")]}
            await send(msg)

        return send_
