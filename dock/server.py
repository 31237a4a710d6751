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

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Scope

from dock.gate import DeviceGate
from dock.instance import Dock, DockConfig, open_dock, wall_clock_us
from dock.middleware import BodyLimit, SignResponses, add_exception_handlers
from dock.pages import mount_pages
from dock.refusals import LogRefusals
from dock.routes import admin, enrollment, status, unsigned, uploads
from dock.routes import time as time_routes
from dock.strict import method_not_allowed
from dock.verify import SegmentVerifier
from dock.wall import WallLimits, uvicorn_options

__all__ = [
    "Dock",
    "DockConfig",
    "ServerThread",
    "create_app",
    "open_dock",
    "serve",
    "wall_clock_us",
]

log = logging.getLogger("bwv.dock")

ROUTERS = (
    enrollment.router,  # GET /v1/dock, POST /v1/enroll
    time_routes.router,  # POST /v1/time
    uploads.router,  # /v1/segments/{segment_id}[/complete]
    unsigned.router,  # /v1/segments/{segment_id}/unsigned
    status.router,  # GET /v1/status
    admin.router,  # /v1/admin/...
)


def create_app(dock: Dock) -> FastAPI:
    """The dock's ASGI application for ``dock`` (no module-level state: the routers get the
    dock from ``app.state.dock`` through ``Depends(dock.routes.deps.get_dock)``)."""
    cfg = dock.config
    app = FastAPI(
        title="bwv dock",
        version="1",
        description="Receives signed, chained segments from body-worn cameras, "
        "verifies them, keeps a custody log and signs receipts.",
        docs_url=None,  # dock.pages serves /docs and /redoc from local files
        redoc_url=None,
    )
    app.state.dock = dock

    def limit_for(scope: Scope) -> int:
        if scope.get("method") == "PATCH" and scope.get("path", "").startswith("/v1/segments/"):
            return cfg.max_chunk_bytes
        return cfg.max_json_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(DeviceGate, dock=dock)  # authenticate before reading (dock/gate.py)
    app.add_middleware(SignResponses, key=dock.key)
    app.add_middleware(LogRefusals)  # outermost: sees every refusal, whoever made it
    add_exception_handlers(app)
    app.add_exception_handler(HTTPException, method_not_allowed)  # the whole Allow
    mount_pages(app, dock.key_id)
    for router in ROUTERS:
        app.include_router(router)
    return app


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
        create_app(dock),
        host=host,
        port=port,
        log_level=log_level,
        **{**uvicorn_options(dock.config.wall), **uvicorn_kw},  # slow clients cut (dock/wall.py)
    )


def _limits_of(app: ASGIApp) -> WallLimits:
    dock = getattr(getattr(app, "state", None), "dock", None)
    return dock.config.wall if isinstance(dock, Dock) else WallLimits()


class ServerThread:
    """A real uvicorn server in a thread, bound before it starts (port 0: any free port)."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: WallLimits | None = None,
    ) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every answer waits ~40 ms on Nagle and delayed ACKs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            **uvicorn_options(limits or _limits_of(app)),
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
