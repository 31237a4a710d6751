"""One log line for every request the dock refuses (any 4xx answer).

:class:`LogRefusals` wraps the whole app (outside the body limit and the response signing), so
it sees every refusal, whichever layer made it: a wrong enrollment or admin token, a bad
signature, a replay, a body too large, invalid input, an unknown path. The line names the
reason (the answer's ``code`` and ``detail``), the device id the request claimed (the
``Bwv-Device`` header, when it is a well-formed id), the remote address, the method and the
path. It never names a token, a key, a signature or any other header: the reason is the
dock's own text, which holds none of them.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dock.protocol import H_DEVICE, is_device_id

log = logging.getLogger("bwv.dock")

MAX_KEPT_BODY = 4096  # a refusal's body is a short JSON problem; more is not read for the log
_DEVICE_HEADER = H_DEVICE.lower().encode()


def _printable(text: str, limit: int = 200) -> str:
    """``text`` safe for one log line: control characters escaped, at most ``limit`` long."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _device_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == _DEVICE_HEADER:
            text = value.decode("latin-1")
            return text if is_device_id(text) else None
    return None


def _remote(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "unknown"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _reason(status: int, body: bytes) -> tuple[str | None, str]:
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        code = problem.get("code")
        detail = problem.get("detail")
        return (code if isinstance(code, str) else None), _printable(str(detail or status))
    return None, f"HTTP {status}"


def log_refusal(scope: Scope, status: int, body: bytes) -> None:
    code, reason = _reason(status, body)
    device = _device_id(scope)
    remote = _remote(scope)
    method = _printable(str(scope.get("method", "")), 10)
    path = _printable(str(scope.get("path", "")))
    log.warning(
        "refused %s %s from %s%s: %d %s%s",
        method,
        path,
        remote,
        f" (device {device})" if device else "",
        status,
        f"{code}: " if code else "",
        reason,
        extra={
            "event": "refused",
            "status": status,
            "code": code,
            "reason": reason,
            "device_id": device,
            "remote": remote,
            "method": method,
            "path": path,
        },
    )


class LogRefusals:
    """ASGI middleware: log every 4xx answer with :func:`log_refusal`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        kept: list[bytes] = []
        size = 0

        async def watched(msg: Message) -> None:
            nonlocal status, size
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            elif msg["type"] == "http.response.body" and 400 <= status < 500:
                body = msg.get("body", b"")
                if size < MAX_KEPT_BODY:
                    kept.append(body[: MAX_KEPT_BODY - size])
                    size += len(kept[-1])
                if not msg.get("more_body", False):
                    log_refusal(scope, status, b"".join(kept))
            await send(msg)

        await self.app(scope, receive, watched)
